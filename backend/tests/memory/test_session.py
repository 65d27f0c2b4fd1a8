"""Session memory contract: the Redis and in-process backends behave the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from nova.memory.messages import StoredMessage
from nova.memory.session import LocalSessionStore, RedisSessionStore, Session, SessionStore

from .conftest import REDIS_URL


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest, mem_namespace: str) -> AsyncIterator[SessionStore]:
    s: SessionStore
    if request.param == "redis":
        client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=1.0)
        s = RedisSessionStore(
            client, mem_namespace, ttl=0.5, window=4, url=REDIS_URL, timeout=1.0, owns_client=True
        )
    else:
        s = LocalSessionStore(ttl=0.5, window=4, max_conversations=1000)
    yield s
    await s.close()


def msg(role: str, content: str, tokens: int = 1, status: str = "complete", seq: int = 0) -> StoredMessage:
    return StoredMessage(seq, role, content, tokens, status)


async def test_miss_seed_append_put(store: SessionStore) -> None:
    cid = uuid.uuid4().hex
    assert await store.get(cid) is None
    assert await store.append(cid, [msg("user", "x")], 1) is None
    assert await store.put(cid, msg("assistant", "y", seq=1)) is False
    await store.seed(
        Session(cid, "u1", 2, [msg("user", "a", seq=1), msg("assistant", "b", seq=2)], "sum", 0, 3)
    )
    # a second seed (another replica loading concurrently) does not clobber what is there
    await store.seed(Session(cid, "u2", 0, []))
    first = await store.append(cid, [msg("user", "c", 5)], reserve=1)
    assert first == 3
    assert await store.put(cid, msg("assistant", "d", 7, "partial", seq=4))
    got = await store.get(cid)
    assert got is not None
    assert (got.user_id, got.last_seq, got.summary, got.summary_tokens) == ("u1", 4, "sum", 3)
    assert [(m.seq, m.role, m.content, m.tokens, m.status) for m in got.messages] == [
        (1, "user", "a", 1, "complete"),
        (2, "assistant", "b", 1, "complete"),
        (3, "user", "c", 5, "complete"),
        (4, "assistant", "d", 7, "partial"),
    ]
    # put replaces the message at a seq
    assert await store.put(cid, msg("assistant", "d2", 8, seq=4))
    got = await store.get(cid)
    assert got is not None and [m.content for m in got.messages][-1] == "d2" and len(got.messages) == 4


async def test_window_is_bounded_and_seqs_are_unique_under_concurrency(store: SessionStore) -> None:
    cid = uuid.uuid4().hex
    await store.seed(Session(cid, "u", 0, []))
    firsts = await asyncio.gather(*(store.append(cid, [msg("user", f"m{i}")], 1) for i in range(10)))
    assert sorted(f for f in firsts if f is not None) == list(range(1, 21, 2))
    got = await store.get(cid)
    assert got is not None
    assert got.last_seq == 20
    assert [m.seq for m in got.messages] == sorted(firsts)[-4:]  # window of 4


async def test_summary_remove_delete_and_ttl(store: SessionStore) -> None:
    cid = uuid.uuid4().hex
    await store.seed(Session(cid, "u", 0, []))
    await store.append(cid, [msg("user", "a"), msg("user", "b")], 0)
    await store.remove(cid, [2])
    await store.set_summary(cid, "new", 5, 9)
    await store.set_summary(cid, "old", 3, 1)  # never moves back
    got = await store.get(cid)
    assert got is not None
    assert [m.content for m in got.messages] == ["a"]
    assert (got.summary, got.summary_upto, got.summary_tokens) == ("new", 5, 9)
    await store.delete(cid)
    assert await store.get(cid) is None
    other = uuid.uuid4().hex
    await store.seed(Session(other, "u", 0, []))
    await asyncio.sleep(0.3)
    assert await store.get(other) is not None  # use refreshes the TTL
    await asyncio.sleep(0.3)
    assert await store.get(other) is not None
    await asyncio.sleep(0.7)
    assert await store.get(other) is None


async def test_local_store_is_an_lru_with_a_bound() -> None:
    s = LocalSessionStore(ttl=60, window=10, max_conversations=2)
    for cid in ("a", "b"):
        await s.seed(Session(cid, "u", 0, []))
    await s.get("a")  # a is now most recent
    await s.seed(Session("c", "u", 0, []))
    assert await s.get("b") is None
    assert await s.get("a") is not None and await s.get("c") is not None


async def test_budgeted_get_returns_the_newest_whole_turns_that_could_fit(store: SessionStore) -> None:
    cid = uuid.uuid4().hex
    await store.seed(Session(cid, "u", 0, []))
    # window of 4: user(10) assistant-error(0) user(10) assistant(10)
    await store.append(cid, [msg("user", "old", 50)], 0)
    await store.append(cid, [msg("user", "a", 10), msg("assistant", "", 0, "error")], 0)
    await store.append(cid, [msg("user", "b", 10), msg("assistant", "c", 10)], 0)
    everything = await store.get(cid)
    assert everything is not None and [m.content for m in everything.messages] == ["a", "", "b", "c"]
    # b+c cost 2 x (10 + 1) = 22: a budget of 22 still fits them, and the turn before must come
    # along so the assembler can decide (it starts at a user message, errors cost nothing)
    got = await store.get(cid, budget=22, overhead=1)
    assert got is not None and [m.content for m in got.messages] == ["a", "", "b", "c"]
    got = await store.get(cid, budget=21, overhead=1)
    assert got is not None and [m.content for m in got.messages] == ["b", "c"]
    got = await store.get(cid, budget=0, overhead=1)
    assert got is not None and [m.content for m in got.messages] == ["b", "c"]
