"""Shared fixtures: real Postgres/Redis (started if down), fake vLLM upstreams, a live gateway."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway import ADMIN_KEY, GatewayServer, gateway_settings, write_models_file

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def services() -> None:
    """Postgres on 5432 and Redis on 6379, started with the repo's script when down."""
    if not (_reachable(5432) and _reachable(6379)):
        subprocess.run([str(REPO / "scripts" / "ensure-services.sh")], check=True)


@pytest.fixture(scope="session")
def postgres_url(services: None) -> str:
    return "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def redis_url(services: None) -> str:
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def fake_upstreams() -> Iterator[Callable[..., FakeUpstream]]:
    started: list[FakeUpstream] = []

    def make(model: str = "fake-model", **kw: Any) -> FakeUpstream:
        f = FakeUpstream(model, **kw).start()
        started.append(f)
        return f

    yield make
    for f in started:
        f.stop()


@pytest.fixture
def fake(fake_upstreams: Callable[..., FakeUpstream]) -> FakeUpstream:
    return fake_upstreams()


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayServer]]:
    running: list[GatewayServer] = []

    def make(models: dict[str, Any], aliases: dict[str, str] | None = None, **settings: Any) -> GatewayServer:
        mf = write_models_file(tmp_path / f"models-{len(running)}.yaml", models, aliases)
        gw = GatewayServer(gateway_settings(tmp_path, mf, **settings)).start()
        running.append(gw)
        return gw

    yield make
    for gw in running:
        gw.stop()


@pytest.fixture
def gateway(fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer]) -> GatewayServer:
    """One gateway in front of one fake replica serving ``fake-model`` (alias ``nano``)."""
    return gateway_factory(
        {"fake-model": {"deployments": [{"base_url": fake.base_url}], "context_window": 4096}},
        aliases={"nano": "fake-model"},
    )


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}
