"""Batched usage writer: flush by size and by time, drain on shutdown, spool when the database
is down and replay the spool on the next start — no event lost."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from nova.config import Settings
from nova.store.db import Database
from nova.store.repos.usage import UsageRepository
from nova.store.usage import UsageEvent
from nova.store.usage_writer import BatchedUsageWriter


def _event(user: str, i: int = 0) -> UsageEvent:
    return UsageEvent(f"req-{i}", user, "k", "m", "/v1/chat/completions", 200, 3, 4, 12.5, 2.0)


async def _count(db: Database, user: str) -> int:
    async with db.session() as s:
        rows = await UsageRepository(s).aggregate([], user_id=user)
    return rows[0].requests if rows else 0


async def test_flushes_by_time_and_size_and_drains_on_stop(db: Database, settings: Settings) -> None:
    writer = BatchedUsageWriter(
        db, settings.model_copy(update={"usage_flush_events": 50, "usage_flush_ms": 100})
    )
    await writer.start()
    user = uuid.uuid4().hex
    writer.record(_event(user))
    for _ in range(100):  # time-based flush (100 ms) of a single event
        if await _count(db, user) == 1:
            break
        await asyncio.sleep(0.05)
    assert await _count(db, user) == 1
    for i in range(120):  # crosses the size threshold twice
        writer.record(_event(user, i))
    await writer.stop()  # whatever is still buffered is written before stop returns
    assert writer.pending == 0
    assert await _count(db, user) == 121


async def test_database_down_spools_then_replays(db: Database, settings: Settings, tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    down = Settings(env="test", database_url="postgresql+asyncpg://postgres@127.0.0.1:1/test",
                    usage_spool_file=spool, usage_flush_ms=50)  # fmt: skip
    dead_db = Database(down)
    writer = BatchedUsageWriter(dead_db, down)
    await writer.start()
    user = uuid.uuid4().hex
    for i in range(25):
        writer.record(_event(user, i))
    await asyncio.sleep(0.2)  # flush attempts fail and are retried, nothing dropped
    assert writer.pending == 25
    await writer.stop()
    await dead_db.dispose()
    assert spool.exists() and len(spool.read_bytes().splitlines()) == 25

    healthy = BatchedUsageWriter(db, settings.model_copy(update={"usage_spool_file": spool}))
    await healthy.start()  # replays the spool first
    await healthy.stop()
    assert not spool.exists()
    assert await _count(db, user) == 25
