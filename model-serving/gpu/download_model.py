"""Download a model snapshot from the Hugging Face Hub into the Nova data dir, for the GPU profile.

Run on the GPU box (or in the vLLM container) before ``serve.sh gpu``; vLLM then starts with
HF_HUB_OFFLINE=1 from a local directory, so a Hub outage or rate limit never blocks a restart.
The token is read from $HF_TOKEN (needed for gated repos); it is never written anywhere.

    HF_TOKEN=hf_... python model-serving/gpu/download_model.py Qwen/Qwen2.5-7B-Instruct-AWQ
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REPO = "Qwen/Qwen2.5-7B-Instruct-AWQ"
# Weights, configs, tokenizer and chat template only: skip other formats shipped in the same repo.
ALLOW = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "repo",
        nargs="?",
        default=DEFAULT_REPO,
        help=f"Hub repo id (default {DEFAULT_REPO})",
    )
    parser.add_argument("--revision", default=None, help="branch, tag or commit to pin (recommended)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="target dir (default DATA_DIR/models/<lowercased repo name>; DATA_DIR: $NOVA_DATA_DIR or data)",
    )
    args = parser.parse_args(argv)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        print(
            "huggingface_hub is missing: pip install huggingface_hub (it ships with vllm)",
            file=sys.stderr,
        )
        return 2
    data_dir = Path(os.environ.get("NOVA_DATA_DIR", ROOT / "data"))
    out = args.out or data_dir / "models" / args.repo.split("/")[-1].lower()
    path = snapshot_download(
        repo_id=args.repo,
        revision=args.revision,
        local_dir=out,
        allow_patterns=ALLOW,
        token=os.environ.get("HF_TOKEN") or None,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
