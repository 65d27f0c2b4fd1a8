"""Stateful chat through a live gateway: history assembly, storage of both turns (complete,
partial on disconnect, error on upstream failure), isolation, summaries, and a Postgres outage
mid-conversation (cut through a TCP proxy) with nothing lost — on Redis+Postgres and on the
embedded in-process+SQLite backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nova.config import Settings
from nova.store.conversations import ConversationRepository, Message
from nova.store.db import Database
from tests.fakes.upstream import Behavior, FakeUpstream
from tests.gateway import GatewayServer

from .conftest import PG_URL, REDIS_URL
from .harness import auth, memory_of, start_gateway
from .proxy import TcpProxy

GatewayMaker = Callable[..., GatewayServer]


@pytest.fixture(params=["redis-postgres", "memory-sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gateway_maker(
    backend: str,
    tmp_path: Path,
    mem_base: dict[str, Any],
    mem_pg_schema: str,
    mem_migrated: dict[str, Settings],
) -> Iterator[GatewayMaker]:
    started: list[GatewayServer] = []

    def make(fake: FakeUpstream, context_window: int = 4096, db_port: int = 5432, **kw: Any) -> GatewayServer:
        common = {k: mem_base[k] for k in ("secret_key", "jwt_secret")}
        if backend == "redis-postgres":
            db = {
                "database_url": PG_URL.replace(":5432", f":{db_port}"),
                "database_schema": mem_pg_schema,
                "redis_url": REDIS_URL,
                "redis_namespace": f"{mem_base['redis_namespace']}:{uuid.uuid4().hex[:6]}",
                "memory_backend": "redis",
            }
        else:
            db = {
                "database_url": mem_migrated["sqlite"].resolved_database_url,
                "memory_backend": "memory",
                "memory_journal_file": tmp_path / f"journal-{uuid.uuid4().hex[:6]}.jsonl",
            }
            if db_port != 5432:  # outage test: in-process memory + journal in front of Postgres
                db["database_url"] = PG_URL.replace(":5432", f":{db_port}")
                db["database_schema"] = mem_pg_schema
        gw = start_gateway(tmp_path, fake, context_window, **common, **db, **kw)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


async def new_conversation(client: httpx.AsyncClient, gw: GatewayServer, user: str = "alice") -> str:
    r = await client.post(f"{gw.url}/v1/conversations", json={"title": "t"}, headers=auth(user))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def chat(
    client: httpx.AsyncClient, gw: GatewayServer, conv: str, text: str, stream: bool = False, **extra: Any
) -> httpx.Response:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": text}], "conversation_id": conv}
    body.update(stream=stream, **extra)
    return await client.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth("alice"))


async def stored(gw: GatewayServer, conv: str) -> list[Message]:
    """What the database has (not session memory), through the test's own engine."""
    db = Database(gw.settings)
    try:
        async with db.session() as s:
            return await ConversationRepository(s).messages(conv)
    finally:
        await db.dispose()


async def eventually(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def settled(gw: GatewayServer, conv: str, n: int) -> list[Message]:
    """The conversation's rows once the database has at least ``n`` of them."""

    async def check() -> list[Message] | None:
        rows = await stored(gw, conv)
        return rows if len(rows) >= n else None

    return list(await eventually(check))


def upstream_messages(fake: FakeUpstream) -> list[tuple[str, str]]:
    body = fake.stats.recorded[-1].body
    assert "conversation_id" not in body
    return [(m["role"], m["content"]) for m in body["messages"]]


async def test_history_is_assembled_and_both_turns_stored(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    gw = gateway_maker(fake)
    conv = await new_conversation(client, gw)
    fake.default = Behavior(tokens=3)
    r = await chat(client, gw, conv, "hello there")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "t0 t1 t2 "
    r = await chat(client, gw, conv, "second question", stream=True)
    assert r.status_code == 200 and "data: [DONE]" in r.text
    assert upstream_messages(fake) == [
        ("user", "hello there"),
        ("assistant", "t0 t1 t2 "),
        ("user", "second question"),
    ]
    # a system prompt is used for the call, not stored
    body = {
        "model": "fake-model",
        "conversation_id": conv,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "third"}],
    }
    r = await client.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth("alice"))
    assert r.status_code == 200
    assert upstream_messages(fake)[0] == ("system", "be brief") and len(upstream_messages(fake)) == 6
    rows = await settled(gw, conv, 6)
    assert [(m.seq, m.role, m.status) for m in rows] == [
        (1, "user", "complete"),
        (2, "assistant", "complete"),
        (3, "user", "complete"),
        (4, "assistant", "complete"),
        (5, "user", "complete"),
        (6, "assistant", "complete"),
    ]
    assert [m.tokens for m in rows[:2]] == [2, 3]  # counted by the upstream's /tokenize
    got = (await client.get(f"{gw.url}/v1/conversations/{conv}", headers=auth("alice"))).json()
    assert [m["content"] for m in got["messages"]][:3] == ["hello there", "t0 t1 t2 ", "second question"]


async def test_old_turns_are_dropped_to_fit_the_window(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    # window 120, answer cap 20, overhead 8: 92 tokens of prompt; each turn costs 10+8 + 3+8 = 29.
    gw = gateway_maker(fake, context_window=120, memory_message_overhead_tokens=8)
    conv = await new_conversation(client, gw)
    fake.default = Behavior(tokens=3)
    ten_words = " ".join(["w"] * 10)
    for _ in range(4):
        assert (await chat(client, gw, conv, ten_words, max_tokens=20)).status_code == 200
        await settled(gw, conv, 0)
    # new turn 18 + 2 full turns (58) = 76 <= 92; a third turn would need 105
    assert len(upstream_messages(fake)) == 5
    r = await chat(client, gw, conv, " ".join(["w"] * 200), max_tokens=20)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


async def test_disconnect_mid_stream_stores_a_partial_answer(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    gw = gateway_maker(fake)
    conv = await new_conversation(client, gw)
    fake.push(Behavior(tokens=200, itl=0.02))
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "long"}], "conversation_id": conv}
    async with client.stream(
        "POST", f"{gw.url}/v1/chat/completions", json={**body, "stream": True}, headers=auth("alice")
    ) as r:
        seen = 0
        async for _ in r.aiter_bytes():
            seen += 1
            if seen >= 3:
                break
    rows = await settled(gw, conv, 2)
    user, answer = rows
    assert (user.role, user.content, user.status) == ("user", "long", "complete")
    assert (answer.role, answer.status, answer.error) == ("assistant", "partial", "client_disconnected")
    assert answer.content.startswith("t0 ") and len(answer.content.split()) < 200
    assert fake.wait_idle(5) and fake.stats.cancelled == 1


async def test_upstream_failure_keeps_the_user_message_and_records_the_error(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    gw = gateway_maker(fake, eject_after_failures=100)  # keep the replica in rotation afterwards
    conv = await new_conversation(client, gw)
    fake.push(*[Behavior(mode="status", status=500)] * 3)
    r = await chat(client, gw, conv, "are you there")
    assert r.status_code == 502
    rows = await settled(gw, conv, 2)
    assert [(m.role, m.content, m.status) for m in rows] == [
        ("user", "are you there", "complete"),
        ("assistant", "", "error"),
    ]
    assert rows[1].error
    # the failed answer is not context for the next turn; the question is
    fake.default = Behavior(tokens=2)
    assert (await chat(client, gw, conv, "again")).status_code == 200
    assert upstream_messages(fake) == [("user", "are you there"), ("user", "again")]


async def test_per_user_isolation(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    gw = gateway_maker(fake)
    conv = await new_conversation(client, gw, "alice")
    mine = await new_conversation(client, gw, "bob")
    url = f"{gw.url}/v1/conversations/{conv}"
    bob = auth("bob")
    for r in (
        await client.get(url, headers=bob),
        await client.patch(url, json={"title": "pwned"}, headers=bob),
        await client.delete(url, headers=bob),
    ):
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "conversation_id": conv}
    r = await client.post(f"{gw.url}/v1/chat/completions", json=body, headers=bob)
    assert r.status_code == 404
    assert fake.stats.requests == 0
    listed = (await client.get(f"{gw.url}/v1/conversations", headers=bob)).json()["data"]
    assert [c["id"] for c in listed] == [mine]
    assert (await client.get(url, headers=auth("alice"))).json()["title"] == "t"
    r = await client.get(f"{gw.url}/v1/conversations", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


async def test_conversation_resource_lifecycle(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    gw = gateway_maker(fake)
    a = auth("alice")
    base = f"{gw.url}/v1/conversations"
    r = await client.post(base, headers=a)
    assert r.status_code == 201
    created = r.json()
    assert set(created) >= {"id", "title", "model", "created_at", "updated_at"}
    assert created["title"] == "New conversation"
    ids = [created["id"]] + [
        (await client.post(base, json={"title": f"c{i}"}, headers=a)).json()["id"] for i in range(4)
    ]
    r = await client.patch(f"{base}/{ids[0]}", json={"title": "renamed"}, headers=a)
    assert r.status_code == 200 and r.json()["title"] == "renamed"
    assert (await client.patch(f"{base}/{ids[0]}", json={"title": ""}, headers=a)).status_code == 400
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(base, params=params, headers=a)).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[0] == ids[0]  # renamed: most recently updated
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))  # (alice has others from other tests)
    assert (await client.get(base, params={"cursor": "garbage!"}, headers=a)).status_code == 400
    assert (await client.get(base, params={"limit": 0}, headers=a)).status_code == 400
    fake.default = Behavior(tokens=2)
    assert (await chat(client, gw, ids[1], "hello")).status_code == 200
    await settled(gw, ids[1], 2)
    r = await client.delete(f"{base}/{ids[1]}", headers=a)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert (await client.get(f"{base}/{ids[1]}", headers=a)).status_code == 404
    assert await stored(gw, ids[1]) == []
    assert (await chat(client, gw, ids[1], "still there?")).status_code == 404
    assert (await chat(client, gw, "not-a-conversation", "hi")).status_code == 404


async def test_summary_replaces_dropped_turns(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    gw = gateway_maker(fake, context_window=120, memory_summarize=True, memory_summary_max_tokens=5)
    conv = await new_conversation(client, gw)
    fake.default = Behavior(tokens=3)
    ten_words = " ".join(["w"] * 10)
    for _ in range(4):
        assert (await chat(client, gw, conv, ten_words, max_tokens=20)).status_code == 200

    async def summarized() -> bool:
        db = Database(gw.settings)
        try:
            async with db.session() as s:
                c = await ConversationRepository(s).get(conv)
                return bool(c and c.summary)
        finally:
            await db.dispose()

    await eventually(summarized)
    summary_calls = [
        r for r in fake.stats.recorded if "maintain the running summary" in str(r.body["messages"][0])
    ]
    assert summary_calls and summary_calls[0].body["max_tokens"] == 5
    assert (await chat(client, gw, conv, ten_words, max_tokens=20)).status_code == 200
    chats = [
        r for r in fake.stats.recorded if "maintain the running summary" not in str(r.body["messages"][0])
    ]
    sent = [(m["role"], m["content"]) for m in chats[-1].body["messages"]]
    assert sent[0][0] == "system" and sent[0][1].startswith("Summary of the earlier conversation:")
    assert sent[-1] == ("user", ten_words)


async def test_postgres_outage_mid_conversation_loses_nothing(
    gateway_maker: GatewayMaker, fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    proxy = TcpProxy(5432).start()
    try:
        gw = gateway_maker(fake, db_port=proxy.port, memory_flush_max_backoff=0.2)
        conv = await new_conversation(client, gw)
        fake.default = Behavior(tokens=2)
        for i in range(5):
            r = await chat(client, gw, conv, f"before {i}", stream=i % 2 == 0)
            assert r.status_code == 200
        await settled(gw, conv, 10)
        proxy.cut()
        for i in range(5):  # the database is unreachable: the session memory and the queue carry on
            r = await chat(client, gw, conv, f"during {i}", stream=i % 2 == 0)
            assert r.status_code == 200, r.text
        assert len(upstream_messages(fake)) == 19  # the whole history was still assembled
        await asyncio.sleep(0.5)
        assert memory_of(gw).flusher.failures > 0
        proxy.restore()
        rows = await settled(gw, conv, 20)
    finally:
        proxy.stop()
    assert [m.seq for m in rows] == list(range(1, 21))
    users = [m.content for m in rows if m.role == "user"]
    assert users == [f"before {i}" for i in range(5)] + [f"during {i}" for i in range(5)]
    assert all(m.status == "complete" for m in rows)


async def test_redis_outage_fails_fast_and_stateless_chat_keeps_working(
    fake: FakeUpstream,
    client: httpx.AsyncClient,
    tmp_path: Path,
    mem_base: dict[str, Any],
    mem_pg_schema: str,
    mem_migrated: Any,
) -> None:
    proxy = TcpProxy(6379).start()
    gw = start_gateway(
        tmp_path,
        fake,
        secret_key=mem_base["secret_key"],
        jwt_secret=mem_base["jwt_secret"],
        database_url=PG_URL,
        database_schema=mem_pg_schema,
        redis_url=f"redis://127.0.0.1:{proxy.port}/0",
        redis_namespace=f"{mem_base['redis_namespace']}:outage",
    )
    try:
        conv = await new_conversation(client, gw)
        fake.default = Behavior(tokens=2)
        assert (await chat(client, gw, conv, "one")).status_code == 200
        proxy.cut()
        r = await chat(client, gw, conv, "two")
        assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"
        stateless = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
        r = await client.post(f"{gw.url}/v1/chat/completions", json=stateless, headers=auth("alice"))
        assert r.status_code == 200
        proxy.restore()
        assert (await chat(client, gw, conv, "three")).status_code == 200
        rows = await settled(gw, conv, 4)
        assert [m.content for m in rows if m.role == "user"] == ["one", "three"]
    finally:
        gw.stop()
        proxy.stop()
