"""ConversationMemory directly: a session evicted while its writes wait for the database is not
re-read (which would hand out its sequence numbers again) until they are applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from nova.config import Settings
from nova.errors import ServiceUnavailable
from nova.identity.principal import Principal
from nova.llm.protocol import parse_request
from nova.llm.relay import Outcome
from nova.memory.components import build_memory
from nova.store.conversations import ConversationRepository
from nova.store.db import Database

from .conftest import PG_URL
from .proxy import TcpProxy

ALICE = Principal(user_id="alice", role="user")


def view(conv: str, text: str) -> Any:
    body = {"model": "m", "conversation_id": conv, "messages": [{"role": "user", "content": text}]}
    return parse_request(orjson.dumps(body), "chat", None)


async def test_evicted_session_with_unsaved_writes_is_not_reloaded_early(
    tmp_path: Path, mem_base: dict[str, Any], mem_pg_schema: str, mem_migrated: Any
) -> None:
    proxy = TcpProxy(5432).start()
    url = PG_URL.replace(":5432", f":{proxy.port}")
    settings = Settings(
        **{**mem_base, "data_dir": tmp_path},
        database_url=url,
        database_schema=mem_pg_schema,
        memory_flush_max_backoff=0.1,
        memory_flush_linger_ms=0,
    )
    db = Database(settings)
    comps = build_memory(settings, db, None)
    assert comps is not None
    await comps.start()
    memory = comps.memory
    try:
        conv = (await comps.conversations.create("alice", "t", "m")).id

        async def turn(text: str) -> None:
            t = await memory.prepare(ALICE, view(conv, text), "m", 4096)
            memory.complete(t, Outcome(status=200, complete=True, content=[f"re: {text}"]))
            await memory.drain()

        await turn("one")
        assert await comps.flusher.wait_caught_up(5, conv)
        proxy.cut()
        await turn("two")  # session hit: accepted while the database is down
        await comps.store.delete(conv)  # evicted (TTL, LRU) before the writes reached the database
        with pytest.raises(ServiceUnavailable):
            await memory.prepare(ALICE, view(conv, "three"), "m", 4096)
        proxy.restore()
        assert await comps.flusher.wait_caught_up(10, conv)
        await turn("three")  # reloaded from the database, numbering continues
        assert await comps.flusher.wait_caught_up(10, conv)
        async with db.session() as s:
            rows = await ConversationRepository(s).messages(conv)
        assert [(m.seq, m.content) for m in rows] == [
            (1, "one"),
            (2, "re: one"),
            (3, "two"),
            (4, "re: two"),
            (5, "three"),
            (6, "re: three"),
        ]
    finally:
        await comps.stop()
        await db.dispose()
        proxy.stop()
