"""Durable write queue (Redis stream and journal file: one contract) and the flusher, including a
Postgres outage cut through a TCP proxy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from nova.config import Settings
from nova.memory.flusher import Flusher
from nova.memory.queue import JournalQueue, RedisStreamQueue, WriteQueue
from nova.store.base import new_id, utcnow
from nova.store.conversations import ConversationRepository, MessageWrite, SummaryWrite
from nova.store.db import Database

from .conftest import PG_URL, REDIS_URL
from .proxy import TcpProxy


def w(conv: str, seq: int, content: str = "") -> MessageWrite:
    return MessageWrite(new_id(), conv, seq, "user", content or f"m{seq}", 1, "complete", None, utcnow())


class QueueFactory:
    def __init__(self, kind: str, tmp: Path, client: aioredis.Redis | None, ns: str) -> None:
        self.kind, self.tmp, self.client, self.ns = kind, tmp, client, ns

    async def make(self, claim_idle_ms: int = 30_000) -> WriteQueue:
        q: WriteQueue
        if self.kind == "redis":
            assert self.client is not None
            q = RedisStreamQueue(self.client, self.ns, claim_idle_ms=claim_idle_ms)
        else:
            q = JournalQueue(self.tmp / "journal.jsonl")
        await q.start()
        return q


@pytest.fixture(params=["redis", "journal"])
async def queues(
    request: pytest.FixtureRequest, tmp_path: Path, mem_namespace: str
) -> AsyncIterator[QueueFactory]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5.0) if request.param == "redis" else None
    yield QueueFactory(request.param, tmp_path, client, f"{mem_namespace}:{uuid.uuid4().hex[:8]}")
    if client is not None:
        await client.aclose()


async def test_queue_order_ack_and_replay(queues: QueueFactory) -> None:
    q = await queues.make()
    await q.append([w("c", 1)])
    await q.append([w("c", 2), SummaryWrite("c", "sum", 2), w("c", 3)])
    assert await q.backlog() == 4
    got = await q.read(2, 0.1)
    assert [getattr(x, "seq", None) for _, x in got] == [1, 2]
    assert await q.pending_for("c") == 4 and await q.pending_for("other") == 0
    await q.ack([got[0]])
    assert await q.pending_for("c") == 3
    rest = await q.read(10, 0.1)
    assert [type(x).__name__ for _, x in rest] == ["SummaryWrite", "MessageWrite"]
    assert await q.read(10, 0.05) == []
    assert await q.backlog() == 3
    await q.close()
    # A new process (or replica) gets everything that was never acknowledged, in order.
    q2 = await queues.make(claim_idle_ms=0)
    again = await q2.read(10, 0.1)
    assert [(type(x).__name__, getattr(x, "seq", None)) for _, x in again] == [
        ("MessageWrite", 2),
        ("SummaryWrite", None),
        ("MessageWrite", 3),
    ]
    again_msg = again[0][1]
    assert isinstance(again_msg, MessageWrite) and again_msg.content == "m2"
    await q2.ack(again)
    assert await q2.backlog() == 0
    assert await q2.pending_for("c") == 0
    await q2.append([w("c", 4)])
    assert [getattr(x, "seq", None) for _, x in await q2.read(10, 0.1)] == [4]
    await q2.close()


async def _conversation(db: Database) -> str:
    async with db.session() as s, s.begin():
        return (await ConversationRepository(s).create("u1", "t")).id


async def _seqs(db: Database, conv: str) -> list[int]:
    async with db.session() as s:
        return [m.seq for m in await ConversationRepository(s).messages(conv)]


async def test_flusher_applies_in_order_and_drains(queues: QueueFactory, db: Database) -> None:
    q = await queues.make()
    conv = await _conversation(db)
    flusher = Flusher(q, db, batch=7, max_backoff=0.2)
    await flusher.start()
    for i in range(1, 31):
        await q.append([w(conv, i)])
    await flusher.stop(10)
    assert await _seqs(db, conv) == list(range(1, 31))
    assert await q.backlog() == 0
    await q.close()


async def test_writes_for_a_deleted_conversation_do_not_block_the_queue(
    queues: QueueFactory, db: Database
) -> None:
    q = await queues.make()
    conv = await _conversation(db)
    await q.append([w("deleted-conversation", 1), w(conv, 1)])
    flusher = Flusher(q, db, batch=10, max_backoff=0.2)
    await flusher.start()
    await flusher.stop(10)
    assert await _seqs(db, conv) == [1]
    assert await q.backlog() == 0
    await q.close()


@pytest.fixture
async def proxied(
    mem_base: dict[str, Any], mem_pg_schema: str, mem_migrated: Any
) -> AsyncIterator[tuple[TcpProxy, Database]]:
    proxy = TcpProxy(5432).start()
    url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    database = Database(Settings(**mem_base, database_url=url, database_schema=mem_pg_schema))
    yield proxy, database
    await database.dispose()
    proxy.stop()


async def test_postgres_outage_loses_nothing(
    queues: QueueFactory, proxied: tuple[TcpProxy, Database]
) -> None:
    proxy, db = proxied
    q = await queues.make()
    conv = await _conversation(db)
    flusher = Flusher(q, db, batch=5, max_backoff=0.2)
    await flusher.start()
    for i in range(1, 11):
        await q.append([w(conv, i)])
    assert await flusher.wait_caught_up(10)
    proxy.cut()
    for i in range(11, 41):  # accepted while the database is unreachable
        await q.append([w(conv, i)])
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.5)
    assert await q.backlog() > 0
    assert flusher.failures > 0
    proxy.restore()
    assert await flusher.wait_caught_up(20)
    await flusher.stop(5)
    assert await _seqs(db, conv) == list(range(1, 41))
    await q.close()


async def test_shutdown_during_outage_keeps_writes_for_the_next_start(
    queues: QueueFactory, proxied: tuple[TcpProxy, Database]
) -> None:
    proxy, db = proxied
    q = await queues.make()
    conv = await _conversation(db)
    proxy.cut()
    flusher = Flusher(q, db, batch=5, max_backoff=0.1)
    await flusher.start()
    for i in range(1, 6):
        await q.append([w(conv, i)])
    await flusher.stop(0.5)  # cannot drain: the database is down
    await q.close()
    proxy.restore()
    q2 = await queues.make(claim_idle_ms=0)
    flusher2 = Flusher(q2, db, batch=5, max_backoff=0.1)
    await flusher2.start()
    await flusher2.stop(10)
    assert await _seqs(db, conv) == [1, 2, 3, 4, 5]
    await q2.close()


async def test_journals_have_one_owner_and_orphans_are_adopted(tmp_path: Path) -> None:
    first = JournalQueue(tmp_path / "j.jsonl")
    await first.start()
    second = JournalQueue(tmp_path / "j.jsonl")  # another instance on the same data directory
    await second.start()
    assert second.path == tmp_path / "j-1.jsonl"
    await second.append([w("c", 1), w("c", 2)])
    await second.close()  # its process "died" with two writes unapplied
    await first.close()
    again = JournalQueue(tmp_path / "j.jsonl")
    await again.start()
    assert again.path == tmp_path / "j.jsonl" and not (tmp_path / "j-1.jsonl").exists()
    assert [getattr(x, "seq", None) for _, x in await again.read(10, 0.1)] == [1, 2]
    await again.close()


async def test_a_write_the_database_refuses_is_dead_lettered_not_blocking(
    queues: QueueFactory, mem_migrated: dict[str, Settings]
) -> None:
    db = Database(mem_migrated["postgres"])  # Postgres enforces VARCHAR lengths; SQLite does not
    q = await queues.make()
    conv = await _conversation(db)
    bad = MessageWrite(new_id(), conv, 2, "r" * 40, "refused", 1, "complete", None, utcnow())
    await q.append([w(conv, 1), bad, w(conv, 3)])
    flusher = Flusher(q, db, batch=10, max_backoff=0.1)
    await flusher.start()
    await flusher.stop(10)
    assert await _seqs(db, conv) == [1, 3]
    assert flusher.dead == 1 and await q.backlog() == 0
    if isinstance(q, JournalQueue):
        dead = (queues.tmp / "journal.jsonl.dead").read_text()
    else:
        assert queues.client is not None
        entries = await queues.client.xrange(f"{queues.ns}:memory:dead")
        dead = entries[0][1][b"w"].decode()
    assert "refused" in dead
    await q.close()
    await db.dispose()
