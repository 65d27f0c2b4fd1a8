"""`make run` (scripts/run.sh) as a newcomer uses it: vLLM CPU + gateway come up, the printed admin key
works with the OpenAI SDK, and Ctrl-C stops both (no vLLM left behind holding 2 GB of KV cache)."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from tests.e2e.conftest import ALIAS, REPO, SERVED_NAME, VLLM_START_TIMEOUT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

RUN = REPO / "scripts" / "run.sh"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_env(data_dir: Path, nova_port: int, vllm_port: int, vllm_python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVA_", "SERVE_"))}
    env.update(
        NOVA_DATA_DIR=str(data_dir),
        NOVA_PORT=str(nova_port),
        VLLM_PORT=str(vllm_port),
        VLLM_VENV=str(vllm_python.parent.parent),
    )
    return env


@pytest.fixture
def data_dir(tmp_path: Path, smollm2_dir: Path) -> Path:
    """A fresh data dir that shares only the converted model cache (so no second 30 s conversion)."""
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / smollm2_dir.name).symlink_to(smollm2_dir)
    return data


def test_make_run_serves_chat_and_stops_cleanly(data_dir: Path, vllm_python: Path) -> None:
    nova_port, vllm_port = free_port(), free_port()
    log = data_dir.parent / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(RUN)],
            cwd=REPO,
            env=run_env(data_dir, nova_port, vllm_port, vllm_python),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the test sends Ctrl-C's SIGINT to it
        )
    try:
        deadline = time.monotonic() + VLLM_START_TIMEOUT + 120
        while "Nova is running" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"run.sh exited {proc.returncode}:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"run.sh not ready:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        banner = log.read_text()
        key_file = data_dir / "admin_api_key"
        key = key_file.read_text().strip()
        assert re.fullmatch(r"sk-nova-[A-Za-z0-9_-]{40,}", key)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key in banner and f"http://127.0.0.1:{nova_port}/" in banner

        models = yaml.safe_load((data_dir / "models.yaml").read_text())
        deployment = models["models"][SERVED_NAME]["deployments"][0]
        assert deployment["base_url"] == f"http://127.0.0.1:{vllm_port}/v1"
        assert models["aliases"] == {ALIAS: SERVED_NAME}

        sdk = OpenAI(base_url=f"http://127.0.0.1:{nova_port}/v1", api_key=key, timeout=300.0, max_retries=0)
        assert {m.id for m in sdk.models.list()} >= {SERVED_NAME, ALIAS}
        reply = sdk.chat.completions.create(
            model=ALIAS, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16
        )
        assert reply.choices[0].message.content
        vllm_pid = int((data_dir / "vllm.pid").read_text())
        assert pid_alive(vllm_pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise

    assert proc.returncode == 130, log.read_text()[-4000:]  # trap 'exit 130' INT
    assert "stopping vLLM" in log.read_text()
    deadline = time.monotonic() + 30
    while pid_alive(vllm_pid) or port_open(vllm_port):
        assert time.monotonic() < deadline, "vLLM still running after run.sh exited"
        time.sleep(0.5)
    assert not port_open(nova_port)
    assert not (data_dir / "vllm.pid").exists()


def test_run_refuses_a_busy_port_before_starting_anything(tmp_path: Path, vllm_python: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [str(RUN)],
            cwd=REPO,
            env=run_env(tmp_path, free_port(), port, vllm_python),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1
    assert f"port {port} is in use" in proc.stderr
    assert not (tmp_path / "vllm.pid").exists()
