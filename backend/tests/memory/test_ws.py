"""WebSocket chat with a real client against a live gateway: auth (first message, subprotocol,
failures), streaming, cancel, interleaved conversations, ping/pong, bad frames, slow clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from nova.api.ws_chat import CLOSE_SLOW, ChatSocket
from nova.config import Settings
from tests.fakes.upstream import Behavior, FakeUpstream
from tests.gateway import GatewayServer

from .conftest import PG_URL, REDIS_URL
from .harness import auth, start_gateway
from .test_chat_memory import settled


@pytest.fixture
def gw(
    fake: FakeUpstream, tmp_path: Path, mem_base: dict[str, Any], mem_pg_schema: str, mem_migrated: Any
) -> Iterator[GatewayServer]:
    g = start_gateway(
        tmp_path,
        fake,
        secret_key=mem_base["secret_key"],
        jwt_secret=mem_base["jwt_secret"],
        database_url=PG_URL,
        database_schema=mem_pg_schema,
        redis_url=REDIS_URL,
        redis_namespace=f"{mem_base['redis_namespace']}:ws",
    )
    yield g
    g.stop()


def ws_url(gw: GatewayServer) -> str:
    return gw.url.replace("http://", "ws://") + "/v1/ws/chat"


@pytest.fixture
async def sock(gw: GatewayServer) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(gw)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "key-alice"}))
        assert json.loads(await ws.recv()) == {"type": "ready"}
        yield ws


async def frames_until_end(ws: ClientConnection, req_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        f = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if f.get("id") != req_id:
            continue
        out.append(f)
        if f["type"] in ("done", "error"):
            return out


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(10):
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code if info.value.rcvd else None


async def test_stream_deltas_then_done_with_usage(sock: ClientConnection, fake: FakeUpstream) -> None:
    fake.default = Behavior(tokens=4)
    await sock.send(
        json.dumps(
            {
                "type": "chat",
                "id": "r1",
                "model": "fake-model",
                "messages": [{"role": "user", "content": "hi you"}],
            }
        )
    )
    frames = await frames_until_end(sock, "r1")
    assert [f["type"] for f in frames] == ["delta"] * 4 + ["done"]
    assert "".join(f["content"] for f in frames[:-1]) == "t0 t1 t2 t3 "
    assert frames[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert frames[-1]["finish_reason"] == "stop"
    # a bad request is an error frame for that id; the socket stays usable
    await sock.send(
        json.dumps(
            {"type": "chat", "id": "r2", "model": "nope", "messages": [{"role": "user", "content": "x"}]}
        )
    )
    err = (await frames_until_end(sock, "r2"))[-1]
    assert err["type"] == "error" and err["error"]["code"] == "model_not_found"
    await sock.send(json.dumps({"type": "ping"}))
    assert json.loads(await sock.recv()) == {"type": "pong"}
    await sock.send(json.dumps({"type": "ping"}).encode())  # binary frames carry JSON too
    assert json.loads(await sock.recv()) == {"type": "pong"}


async def test_subprotocol_auth(gw: GatewayServer, fake: FakeUpstream) -> None:
    async with connect(ws_url(gw), subprotocols=["nova.chat", "bearer.key-bob"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "nova.chat"
        assert json.loads(await ws.recv()) == {"type": "ready"}
        await ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": "a",
                    "model": "fake-model",
                    "messages": [{"role": "user", "content": "x"}],
                }
            )
        )
        assert (await frames_until_end(ws, "a"))[-1]["type"] == "done"


async def test_auth_failures_close_4401(gw: GatewayServer) -> None:
    async with connect(ws_url(gw)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "wrong"}))
        assert await closed_with(ws) == 4401
    async with connect(ws_url(gw)) as ws:
        await ws.send(json.dumps({"type": "chat", "id": "x", "model": "fake-model", "messages": []}))
        assert await closed_with(ws) == 4401
    async with connect(ws_url(gw), subprotocols=["nova.chat", "bearer.wrong"]) as ws:  # type: ignore[list-item]
        assert await closed_with(ws) == 4401
    async with connect(ws_url(gw) + "?token=key-alice") as ws:  # never in the URL
        assert await closed_with(ws) == 4401


async def test_bad_frames_close_4400(sock: ClientConnection) -> None:
    await sock.send("not json")
    assert await closed_with(sock) == 4400


async def test_unknown_type_and_missing_id_close_4400(gw: GatewayServer) -> None:
    for frame in ({"type": "launch"}, {"type": "chat", "model": "fake-model"}, ["type", "chat"]):
        async with connect(ws_url(gw)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "key-alice"}))
            await ws.recv()
            await ws.send(json.dumps(frame))
            assert await closed_with(ws) == 4400


async def test_cancel_stops_generation_and_upstream(sock: ClientConnection, fake: FakeUpstream) -> None:
    fake.push(Behavior(tokens=500, itl=0.02))
    await sock.send(
        json.dumps(
            {
                "type": "chat",
                "id": "long",
                "model": "fake-model",
                "messages": [{"role": "user", "content": "go"}],
            }
        )
    )
    first = json.loads(await asyncio.wait_for(sock.recv(), 10))
    assert first["type"] == "delta"
    await sock.send(json.dumps({"type": "cancel", "id": "long"}))
    frames = await frames_until_end(sock, "long")
    assert frames[-1]["type"] == "done" and frames[-1]["cancelled"] is True
    assert len(frames) < 400
    assert fake.wait_idle(5) and fake.stats.cancelled == 1


async def test_two_conversations_interleaved_on_one_socket(
    sock: ClientConnection, gw: GatewayServer, fake: FakeUpstream
) -> None:
    async with httpx.AsyncClient() as client:
        convs = [
            (await client.post(f"{gw.url}/v1/conversations", json={}, headers=auth("alice"))).json()["id"]
            for _ in range(2)
        ]
    fake.default = Behavior(tokens=20, itl=0.005)
    for turn in range(2):
        for i, conv in enumerate(convs):
            msg = {"type": "chat", "id": f"{conv}-{turn}", "model": "fake-model", "conversation_id": conv,
                   "messages": [{"role": "user", "content": f"conversation {i} turn {turn}"}]}  # fmt: skip
            await sock.send(json.dumps(msg))
        ends: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        while len(ends) < 2:
            f = json.loads(await asyncio.wait_for(sock.recv(), 10))
            order.append(f["id"])
            if f["type"] in ("done", "error"):
                ends[f["id"]] = f
        assert all(f["type"] == "done" for f in ends.values()), ends
        assert order.index(f"{convs[1]}-{turn}") < max(
            i for i, x in enumerate(order) if x == f"{convs[0]}-{turn}"
        )
    for i, conv in enumerate(convs):
        rows = await settled(gw, conv, 4)
        assert [m.content for m in rows if m.role == "user"] == [
            f"conversation {i} turn 0",
            f"conversation {i} turn 1",
        ]
        assert all(m.status == "complete" for m in rows)


async def test_closing_the_socket_mid_stream_stores_a_partial_answer(
    gw: GatewayServer, fake: FakeUpstream
) -> None:
    async with httpx.AsyncClient() as client:
        conv = (await client.post(f"{gw.url}/v1/conversations", json={}, headers=auth("alice"))).json()["id"]
    fake.push(Behavior(tokens=500, itl=0.02))
    async with connect(ws_url(gw), subprotocols=["nova.chat", "bearer.key-alice"]) as ws:  # type: ignore[list-item]
        await ws.recv()
        await ws.send(json.dumps({"type": "chat", "id": "x", "model": "fake-model", "conversation_id": conv,
                                  "messages": [{"role": "user", "content": "tell me"}]}))  # fmt: skip
        for _ in range(3):
            await ws.recv()
    rows = await settled(gw, conv, 2)
    assert (rows[1].status, rows[1].error) == ("partial", "client_disconnected") and rows[1].content
    assert fake.wait_idle(5) and fake.stats.cancelled == 1


class _StuckSocket:
    """A client that never reads: every send blocks."""

    def __init__(self, settings: Settings) -> None:
        self.app = type("App", (), {"state": type("State", (), {"settings": settings, "completions": None,
                                                                   "authenticator": None})()})()  # fmt: skip


async def test_slow_client_is_closed_not_buffered_without_bound() -> None:
    settings = Settings(env="test", ws_send_queue=4, ws_send_timeout=0.2)
    chat = ChatSocket(_StuckSocket(settings))  # type: ignore[arg-type]
    for i in range(4):
        await chat.send({"type": "delta", "id": "x", "content": str(i)})
    assert chat.out.qsize() == 4
    with pytest.raises(OSError):
        await chat.send({"type": "delta", "id": "x", "content": "overflow"})
    assert chat.closing is not None and chat.closing.code == CLOSE_SLOW
    assert chat.out.qsize() == 4  # bounded
    with pytest.raises(OSError):
        await chat.send({"type": "delta", "id": "x", "content": "after close"})


async def test_server_pings_idle_sockets(
    fake: FakeUpstream, tmp_path: Path, mem_base: dict[str, Any], mem_migrated: Any
) -> None:
    g = start_gateway(
        tmp_path,
        fake,
        secret_key=mem_base["secret_key"],
        jwt_secret=mem_base["jwt_secret"],
        database_url=mem_migrated["sqlite"].resolved_database_url,
        memory_journal_file=tmp_path / "ping-journal.jsonl",
        ws_ping_interval=0.1,
    )
    try:
        async with connect(ws_url(g), subprotocols=["nova.chat", "bearer.key-alice"]) as ws:  # type: ignore[list-item]
            assert json.loads(await ws.recv()) == {"type": "ready"}
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "ping"}
            await ws.send(json.dumps({"type": "pong"}))  # accepted silently
            await ws.send(json.dumps({"type": "ping"}))
            for _ in range(50):  # server pings may come first
                if json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}:
                    break
            else:
                raise AssertionError("no pong")
    finally:
        g.stop()
