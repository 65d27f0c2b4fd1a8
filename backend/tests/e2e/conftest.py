"""The real vLLM CPU server (SmolLM2-135M) and a real gateway process in front of it.

The server is installed, prepared and started with exactly the scripts ``make run`` uses
(model-serving/cpu/install.sh, cpu/prepare_model.py, serve.sh cpu), so these tests cover the
embedded default end to end. One server per module that uses it: it takes a minute to start on 2 cores.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]
SERVING = REPO / "model-serving"
SERVED_NAME = "smollm2"
ALIAS = "nano"
INSTALL_TIMEOUT = 1800.0  # first run downloads ~3.5 GB of wheels
PREPARE_TIMEOUT = 600.0
VLLM_START_TIMEOUT = 900.0  # ~30-120 s on 2 shared cores; generous so a loaded machine does not flake
GATEWAY_START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when absent)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += float(s.value)
    return total


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Stop a process started with start_new_session=True, children included."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} during start-up:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not healthy at {url} after {timeout:.0f}s:\n{_tail(log)}")
        time.sleep(0.5)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run_step(cmd: list[str], timeout: float, what: str, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {timeout:.0f}s")
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc.stdout


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The vLLM venv's python, installed by model-serving/cpu/install.sh (instant when already done)."""
    venv = Path(os.environ.get("VLLM_VENV", REPO / ".venv-vllm"))
    _run_step(
        [str(SERVING / "cpu" / "install.sh")],
        INSTALL_TIMEOUT,
        "model-serving/cpu/install.sh",
        env={**os.environ, "VLLM_VENV": str(venv)},
    )
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def smollm2_dir(vllm_python: Path) -> Path:
    """SmolLM2 converted to safetensors, cached in the repo's data dir exactly as `make run` does."""
    out = _run_step(
        [str(vllm_python), str(SERVING / "cpu" / "prepare_model.py"), "--data-dir", str(REPO / "data")],
        PREPARE_TIMEOUT,
        "model-serving/cpu/prepare_model.py",
    )
    model_dir = Path(out.strip().splitlines()[-1])
    assert (model_dir / "config.json").is_file(), model_dir
    return model_dir


@dataclass
class VllmServer:
    url: str  # http://127.0.0.1:PORT (OpenAI API under /v1)
    log: Path

    def metrics_text(self) -> str:
        r = httpx.get(f"{self.url}/metrics", timeout=10.0)
        r.raise_for_status()
        return r.text

    def metric(self, name: str) -> float:
        return metric_sum(self.metrics_text(), name, model_name=SERVED_NAME)

    def wait_metric(self, name: str, value: float, timeout: float) -> float:
        """Poll until ``name`` equals ``value`` or ``timeout`` passes; returns the last value seen."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.metric(name)
            if current == value or time.monotonic() > deadline:
                return current
            time.sleep(0.25)


# Module scope: the server stops when its tests are done, so the suite never runs two vLLM servers.
@pytest.fixture(scope="module")
def vllm_server(
    vllm_python: Path, smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    env = {
        **os.environ,
        "VLLM_VENV": str(vllm_python.parent.parent),
        "SERVE_MODEL": str(smollm2_dir),
        "SERVE_NAME": SERVED_NAME,
        "SERVE_HOST": "127.0.0.1",
        "SERVE_PORT": str(port),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SERVING / "serve.sh"), "cpu"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    atexit.register(_stop_group, proc, 5.0)  # safety net if the session dies before teardown
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/health", proc, VLLM_START_TIMEOUT, log, "vLLM (model-serving/serve.sh cpu)")
        yield VllmServer(url=url, log=log)
    finally:
        _stop_group(proc, 30.0)


@dataclass
class NovaGateway:
    url: str  # http://127.0.0.1:PORT
    api_key: str
    log: Path

    def metrics_text(self) -> str:
        r = httpx.get(f"{self.url}/metrics", timeout=10.0)
        r.raise_for_status()
        return r.text


@pytest.fixture(scope="module")
def nova_gateway(vllm_server: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NovaGateway]:
    """`nova serve` as a separate process (production entry point) relaying to the real vLLM."""
    nova = Path(sys.executable).with_name("nova")
    if not nova.exists():
        pytest.fail(f"{nova} not found: the backend must be installed (make install)")
    tmp = tmp_path_factory.mktemp("gateway")
    models_file = tmp / "models.yaml"
    models_file.write_text(
        yaml.safe_dump(
            {
                "models": {
                    SERVED_NAME: {
                        "context_window": 2048,
                        "routing": {"policy": "prefix"},
                        "deployments": [{"base_url": f"{vllm_server.url}/v1", "model": SERVED_NAME}],
                    }
                },
                "aliases": {ALIAS: SERVED_NAME},
            }
        )
    )
    port = free_port()
    api_key = "sk-e2e-" + secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVA_")}
    env.update(
        NOVA_ENV="test",
        NOVA_HOST="127.0.0.1",
        NOVA_PORT=str(port),
        NOVA_MODELS_FILE=str(models_file),
        NOVA_ADMIN_API_KEY=api_key,
        NOVA_DATA_DIR=str(tmp),
        NOVA_HEALTH_INTERVAL="1.0",
    )
    log = tmp / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(nova), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
            start_new_session=True,
        )
    atexit.register(_stop_group, proc, 5.0)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/health/ready", proc, GATEWAY_START_TIMEOUT, log, "gateway (nova serve)")
        yield NovaGateway(url=url, api_key=api_key, log=log)
    finally:
        _stop_group(proc, 15.0)
