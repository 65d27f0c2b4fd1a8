"""`nova serve` as operators run it: JSON logs with request ids, SIGHUP reload, multi-worker
metrics aggregated across processes, clear failure on a bad models file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakes.upstream import FakeUpstream
from tests.gateway import ADMIN_KEY, free_port
from tests.metrics_util import sample

NOVA = str(Path(sys.executable).with_name("nova"))


def spawn(tmp: Path, models: dict[str, object], **env: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    mf = tmp / "models.yaml"
    mf.write_text(yaml.safe_dump({"models": models}))
    port = free_port()
    log = tmp / "gateway.log"
    full_env = {
        **os.environ,
        "NOVA_PORT": str(port),
        "NOVA_MODELS_FILE": str(mf),
        "NOVA_ADMIN_API_KEY": ADMIN_KEY,
        "NOVA_DATA_DIR": str(tmp),
        "NOVA_HEALTH_INTERVAL": "0.5",
        "NOVA_RAG_ENABLED": "false",
        **env,
    }
    proc = subprocess.Popen([NOVA, "serve"], env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, url, log


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def chat(url: str, model: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", **headers},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_json_logs_carry_request_id_and_sighup_reloads(
    tmp_path: Path, fake_upstreams, procs: list[subprocess.Popen[bytes]]
) -> None:
    a: FakeUpstream = fake_upstreams("a")
    b: FakeUpstream = fake_upstreams("b")
    proc, url, log = spawn(tmp_path, {"a": {"deployments": [{"base_url": a.base_url}]}})
    procs.append(proc)
    assert proc.poll() is None, log.read_text()
    assert chat(url, "a", **{"x-request-id": "trace-42"}).status_code == 200
    assert chat(url, "b").status_code == 404
    (tmp_path / "models.yaml").write_text(
        yaml.safe_dump(
            {
                "models": {
                    "a": {"deployments": [{"base_url": a.base_url}]},
                    "b": {"deployments": [{"base_url": b.base_url}]},
                }
            }
        )
    )
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while chat(url, "b").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert chat(url, "b").status_code == 200
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("msg") == "request" and e.get("request_id") == "trace-42"]
    assert len(access) == 1
    assert access[0]["status"] == 200 and access[0]["model"] == "a" and access[0]["route"] == "chat"
    assert a.stats.recorded[0].headers["x-request-id"] == "trace-42"
    assert any(e.get("msg") == "models loaded" and e.get("models") == ["a", "b"] for e in lines)


def test_two_workers_share_metrics(
    tmp_path: Path, fake: FakeUpstream, procs: list[subprocess.Popen[bytes]]
) -> None:
    proc, url, log = spawn(
        tmp_path,
        {"fake-model": {"deployments": [{"base_url": fake.base_url}]}},
        NOVA_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    procs.append(proc)
    assert proc.poll() is None, log.read_text()
    with httpx.Client(headers={"Connection": "close"}) as c:  # new connection each: both workers serve
        for _ in range(20):
            r = c.post(
                f"{url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200
    text = httpx.get(f"{url}/metrics").text
    assert sample(text, "nova_requests_total", route="chat", model="fake-model", status="200") == 20
    assert sample(text, "nova_tokens_total", model="fake-model", kind="completion") == 160


def test_bad_models_file_fails_at_start_naming_the_field(tmp_path: Path) -> None:
    mf = tmp_path / "models.yaml"
    mf.write_text("models:\n  m:\n    deployments:\n      - base_url: http://x/v1\n        wieght: 2\n")
    env = {
        **os.environ,
        "NOVA_MODELS_FILE": str(mf),
        "NOVA_ADMIN_API_KEY": "k",
        "NOVA_PORT": str(free_port()),
    }
    out = subprocess.run([NOVA, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "models.m.deployments.0.wieght" in out.stdout + out.stderr
