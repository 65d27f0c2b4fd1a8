"""``build_memory`` picks backends from Settings and refuses unsafe combinations."""

from __future__ import annotations

from pathlib import Path

from nova.config import Settings
from nova.llm.pool import UpstreamPool
from nova.memory.components import build_memory, open_memory
from nova.memory.queue import JournalQueue, RedisStreamQueue
from nova.memory.session import LocalSessionStore, RedisSessionStore
from nova.store.db import Database

from .conftest import REDIS_URL


async def test_backends_follow_settings(tmp_path: Path, mem_namespace: str) -> None:
    embedded = Settings(env="test", data_dir=tmp_path)
    comps = build_memory(embedded, Database(embedded), None)
    assert comps is not None
    assert isinstance(comps.store, LocalSessionStore) and isinstance(comps.queue, JournalQueue)
    assert comps.queue.path == tmp_path / "memory-journal.jsonl"
    await comps.start()
    await comps.stop()

    shared = Settings(
        env="test", data_dir=tmp_path, redis_url=REDIS_URL, redis_namespace="novamem-components"
    )
    comps = build_memory(shared, Database(shared), None)
    assert comps is not None
    assert isinstance(comps.store, RedisSessionStore) and isinstance(comps.queue, RedisStreamQueue)
    await comps.start()
    await comps.stop()


def test_several_workers_without_redis_disable_conversations(tmp_path: Path) -> None:
    s = Settings(env="test", data_dir=tmp_path, workers=2)
    assert build_memory(s, Database(s), None) is None
    with_redis = Settings(env="test", data_dir=tmp_path, workers=2, redis_url=REDIS_URL)
    assert build_memory(with_redis, Database(with_redis), None) is not None


async def test_open_memory_migrates_its_own_database_and_can_be_turned_off(tmp_path: Path) -> None:
    off = Settings(env="test", data_dir=tmp_path, memory_enabled=False)
    assert await open_memory(off, UpstreamPool(off)) is None
    fresh = Settings(env="test", data_dir=tmp_path / "fresh")  # embedded default: SQLite in data_dir
    comps = await open_memory(fresh, UpstreamPool(fresh))
    assert comps is not None and comps.owns_db
    created = await comps.conversations.create("u", "hello", None)
    page, _ = await comps.conversations.page("u", 10, None)
    assert [c.id for c in page] == [created.id]
    await comps.stop()
