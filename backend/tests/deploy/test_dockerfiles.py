"""Dockerfiles: hadolint clean, pinned bases, multi-stage, non-root, healthchecks, exec-form commands."""

from __future__ import annotations

import re

import pytest

from tests.deploy.conftest import DOCKERFILES, Dockerfile, run, tool

# The vllm-gpu image extends vllm/vllm-openai (already slim for what it carries): one stage.
SINGLE_STAGE = {"vllm-gpu"}
EXPECTED = {"gateway", "rag", "frontend", "vllm-cpu", "vllm-gpu"}


def test_every_image_has_a_dockerfile() -> None:
    assert {p.parent.name for p in DOCKERFILES} == EXPECTED


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint(path: object) -> None:
    proc = run([tool("hadolint"), "--failure-threshold", "info", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_fails_on_a_real_mistake(tmp_path: object) -> None:
    bad = tmp_path / "Dockerfile"  # type: ignore[operator]
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n")
    assert run([tool("hadolint"), str(bad)]).returncode != 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_image_policy(name: str, dockerfiles: dict[str, Dockerfile]) -> None:
    df = dockerfiles[name]
    bases = df.base_images()
    for image in bases:
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*@sha256:[0-9a-f]{64}", image), (
            f"{name}: {image} not pinned"
        )
    if name not in SINGLE_STAGE:
        assert len(bases) >= 2, f"{name} must be multi-stage"
    user = df.last("USER")
    assert user and not user.startswith(("root", "0")), f"{name} must run as non-root"
    health = df.last("HEALTHCHECK")
    assert health and "CMD" in health and "NONE" not in health, f"{name} has no HEALTHCHECK"
    assert df.exec_form("CMD") is not None or df.exec_form("ENTRYPOINT") is not None


def test_service_commands(dockerfiles: dict[str, Dockerfile]) -> None:
    """The commands the live tests run (test_live_metrics) and the serving launcher checks use."""
    assert dockerfiles["gateway"].exec_form("CMD") == ["nova", "serve"]
    assert dockerfiles["rag"].exec_form("CMD") == ["nova", "serve-rag"]
    assert dockerfiles["vllm-cpu"].exec_form("CMD") == ["model-serving/serve.sh", "cpu"]
    assert dockerfiles["vllm-gpu"].exec_form("ENTRYPOINT") == ["model-serving/serve.sh", "gpu"]
    assert dockerfiles["frontend"].exec_form("CMD") == ["nginx", "-g", "daemon off;"]
