"""The model servers the deploy files start: `model-serving/serve.sh <profile>` as the containers run
it (compose/K3s environment), checked against the gateway models files that point at them."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nova.llm.models_file import ModelsFile, load_models_file
from tests.deploy.conftest import DOCKER, K8S, REPO, Dockerfile, load_yaml_docs, run

SERVING = REPO / "model-serving"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def launch(tmp_path: Path, argv: list[str], env: dict[str, str]) -> list[str]:
    """Run the container's command from the repo root (the images' WORKDIR /opt/nova holds the same
    model-serving/ tree) with a stand-in python that records the vLLM command line."""
    record = tmp_path / "argv.json"
    fake = tmp_path / "python"
    recorder = f'import json, sys; json.dump(sys.argv[1:], open("{record}", "w"))'
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{recorder}' \"$@\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SERVE_", "VLLM_"))}
    proc = run(argv, cwd=REPO, env={**clean, **env, "VLLM_PYTHON": str(fake)})
    assert proc.returncode == 0, proc.stderr
    args: list[str] = json.loads(record.read_text())
    return args


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def compose_env(service: str) -> dict[str, str]:
    env = dict(COMPOSE["services"][service].get("environment", {}))
    return {
        k: str(v).replace("${VLLM_MODEL_DIR:-qwen2.5-7b-instruct-awq}", "qwen2.5-7b-instruct-awq")
        for k, v in env.items()
        if "${" not in str(v) or "VLLM_MODEL_DIR" in str(v)
    }


def dockerfile_env(df: Dockerfile) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in df.all("ENV"):
        for part in rest.split():
            if "=" in part:
                k, _, v = part.partition("=")
                env[k] = v
    return env


def served(models: ModelsFile) -> dict[str, Any]:
    ((name, spec),) = models.models.items()
    return {
        "name": name,
        "upstream": spec.deployments[0].model or name,
        "context": spec.context_window,
        "max_concurrency": spec.deployments[0].max_concurrency,
        "base_url": spec.deployments[0].base_url,
    }


@pytest.fixture(autouse=True)
def vllm_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "test-key")  # the models files read it through api_key_env


def test_gpu_container_command(tmp_path: Path, dockerfiles: dict[str, Dockerfile]) -> None:
    df = dockerfiles["vllm-gpu"]
    entry = df.exec_form("ENTRYPOINT")
    assert entry == COMPOSE["services"]["vllm"]["entrypoint"]
    env = {**dockerfile_env(df), **compose_env("vllm")}
    args = launch(tmp_path, entry or [], env)
    engine = yaml.safe_load((SERVING / "gpu" / "vllm.yaml").read_text())
    assert Path(flag(args, "--config")) == SERVING / "gpu" / "vllm.yaml"
    assert engine["quantization"] == "awq" and engine["enable-prefix-caching"] is True
    assert engine["enable-chunked-prefill"] is True and "tool-call-parser" in engine
    assert flag(args, "--model") == "/models/qwen2.5-7b-instruct-awq"
    assert (flag(args, "--host"), flag(args, "--port")) == ("0.0.0.0", "8000")
    for models_path in (DOCKER / "models.gpu.yaml", K8S / "base" / "models.yaml"):
        m = served(load_models_file(models_path))
        assert m["upstream"] == flag(args, "--served-model-name"), models_path
        assert m["context"] == engine["max-model-len"], models_path
        assert m["base_url"] == "http://vllm:8000/v1"


def test_cpu_container_command(tmp_path: Path, dockerfiles: dict[str, Dockerfile]) -> None:
    df = dockerfiles["vllm-cpu"]
    cmd = df.exec_form("CMD")
    assert cmd == COMPOSE["services"]["vllm-cpu"]["command"]
    args = launch(tmp_path, cmd or [], dockerfile_env(df))
    engine = yaml.safe_load((SERVING / "cpu" / "vllm.yaml").read_text())
    assert Path(flag(args, "--config")) == SERVING / "cpu" / "vllm.yaml"
    assert flag(args, "--model") == "/models/smollm2-135m-instruct"
    assert (flag(args, "--host"), flag(args, "--port")) == ("0.0.0.0", "8000")
    for models_path in (DOCKER / "models.cpu.yaml", K8S / "overlays" / "cpu" / "models.yaml"):
        m = served(load_models_file(models_path))
        assert m["upstream"] == flag(args, "--served-model-name"), models_path
        assert m["context"] == engine["max-model-len"], models_path


def test_k8s_model_servers_use_the_image_commands() -> None:
    """No K3s manifest overrides what the vLLM, gateway or rag images run (except the migrate init
    container, which runs the compose `migrate` service's command)."""
    for path in (K8S / "base").glob("*.yaml"):
        for doc in load_yaml_docs(path.read_text()):
            if doc.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            pod = doc["spec"]["template"]["spec"]
            for c in pod["containers"]:
                if c["image"].startswith("nova/"):
                    assert "command" not in c and "args" not in c, f"{path.name}: {c['name']}"
            for c in pod.get("initContainers", []):
                assert c["command"] == COMPOSE["services"]["migrate"]["command"]
