"""A live gateway (uvicorn thread, the real ``create_app`` with memory wired by its lifespan) in
front of a fake vLLM, with a key -> principal authenticator so tests can act as several users."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from nova.errors import Unauthorized
from nova.identity.principal import Principal
from tests.fakes.upstream import FakeUpstream
from tests.gateway import GatewayServer, gateway_settings, write_models_file

KEYS = {"key-alice": "alice", "key-bob": "bob"}


class KeyAuthenticator:
    """Two users, as the identity store would authenticate them."""

    async def authenticate(self, credential: str) -> Principal:
        user = KEYS.get(credential)
        if user is None:
            raise Unauthorized("Incorrect API key provided.")
        return Principal(user_id=user, role="user", key_id=f"k-{user}")


def auth(user: str) -> dict[str, str]:
    key = next(k for k, v in KEYS.items() if v == user)
    return {"Authorization": f"Bearer {key}"}


def start_gateway(
    tmp_path: Path,
    fake: FakeUpstream,
    context_window: int = 4096,
    uvicorn_loop: str = "asyncio",
    **overrides: Any,
) -> GatewayServer:
    models = {"fake-model": {"deployments": [{"base_url": fake.base_url}], "context_window": context_window}}
    mf = write_models_file(tmp_path / f"models-{fake.port}.yaml", models)
    settings = gateway_settings(tmp_path, mf, **overrides)
    gw = GatewayServer(settings)
    if uvicorn_loop != "asyncio":
        gw.server.config.loop = uvicorn_loop
        gw.thread = threading.Thread(target=gw.server.run, daemon=True)
    gw.start()
    gw.app.state.authenticator = KeyAuthenticator()
    return gw


def memory_of(gw: GatewayServer) -> Any:
    return gw.app.state.memory
