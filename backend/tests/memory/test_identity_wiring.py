"""The wired gateway end to end with real identity: users and API keys from the identity store,
ownership by ``Principal.user_id`` over HTTP and the WebSocket."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fakes.upstream import Behavior, FakeUpstream
from tests.gateway import ADMIN_KEY, GatewayServer, gateway_settings, write_models_file

from .conftest import PG_URL


async def test_real_identity_users_own_their_conversations(
    fake: FakeUpstream, tmp_path: Path, mem_base: dict[str, Any], mem_pg_schema: str, mem_migrated: Any
) -> None:
    models = {"fake-model": {"deployments": [{"base_url": fake.base_url}], "context_window": 4096}}
    settings = gateway_settings(
        tmp_path,
        write_models_file(tmp_path / "models.yaml", models),
        secret_key=mem_base["secret_key"],
        jwt_secret=mem_base["jwt_secret"],
        database_url=PG_URL,
        database_schema=mem_pg_schema,
    )
    gw = GatewayServer(settings).start()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as c:
            keys = {}
            for name in ("ann", "ben"):
                r = await c.post(
                    "/admin/users", json={"username": f"{name}-{uuid.uuid4().hex[:6]}"}, headers=admin
                )
                assert r.status_code == 201, r.text
                r = await c.post("/admin/keys", json={"user_id": r.json()["id"]}, headers=admin)
                assert r.status_code == 201, r.text
                keys[name] = {"Authorization": f"Bearer {r.json()['key']}"}
            conv = (await c.post("/v1/conversations", json={"title": "ann's"}, headers=keys["ann"])).json()[
                "id"
            ]
            fake.default = Behavior(tokens=2)
            body = {
                "model": "fake-model",
                "conversation_id": conv,
                "messages": [{"role": "user", "content": "hi"}],
            }
            assert (await c.post("/v1/chat/completions", json=body, headers=keys["ann"])).status_code == 200
            assert (await c.post("/v1/chat/completions", json=body, headers=keys["ben"])).status_code == 404
            assert (await c.get(f"/v1/conversations/{conv}", headers=keys["ben"])).status_code == 404
            got = (await c.get(f"/v1/conversations/{conv}", headers=keys["ann"])).json()
            assert [m["role"] for m in got["messages"]] == ["user", "assistant"]
        token = keys["ben"]["Authorization"].split()[1]
        url = gw.url.replace("http://", "ws://") + "/v1/ws/chat"
        async with connect(url, subprotocols=["nova.chat", f"bearer.{token}"]) as ws:  # type: ignore[list-item]
            assert json.loads(await ws.recv()) == {"type": "ready"}
            await ws.send(json.dumps({"type": "chat", "id": "x", **body}))
            frame = json.loads(await ws.recv())
            assert frame["type"] == "error" and frame["error"]["code"] == "conversation_not_found"
    finally:
        gw.stop()


async def test_revoking_a_key_closes_its_open_websocket(
    fake: FakeUpstream, tmp_path: Path, mem_base: dict[str, Any], mem_pg_schema: str, mem_migrated: Any
) -> None:
    """The credential is checked again for every chat frame: a key revoked after the handshake
    gets 4401 at its next request instead of chatting on for the life of the socket."""
    models = {"fake-model": {"deployments": [{"base_url": fake.base_url}]}}
    settings = gateway_settings(
        tmp_path,
        write_models_file(tmp_path / "models.yaml", models),
        secret_key=mem_base["secret_key"],
        jwt_secret=mem_base["jwt_secret"],
        database_url=PG_URL,
        database_schema=mem_pg_schema,
    )
    gw = GatewayServer(settings).start()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    fake.default = Behavior(tokens=2)
    chat = {"type": "chat", "model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as c:
            user = await c.post(
                "/admin/users", json={"username": f"cy-{uuid.uuid4().hex[:6]}"}, headers=admin
            )
            key = (await c.post("/admin/keys", json={"user_id": user.json()["id"]}, headers=admin)).json()
            url = gw.url.replace("http://", "ws://") + "/v1/ws/chat"
            async with connect(url) as ws:
                await ws.send(json.dumps({"type": "auth", "token": key["key"]}))
                assert json.loads(await ws.recv()) == {"type": "ready"}
                await ws.send(json.dumps({**chat, "id": "before"}))
                frames = [json.loads(await ws.recv()) for _ in range(3)]
                assert frames[-1]["type"] == "done", frames
                assert (await c.delete(f"/admin/keys/{key['id']}", headers=admin)).status_code == 200
                await ws.send(json.dumps({**chat, "id": "after"}))
                with pytest.raises(ConnectionClosed) as closed:
                    for _ in range(5):
                        await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert fake.stats.requests == 1
    finally:
        gw.stop()
