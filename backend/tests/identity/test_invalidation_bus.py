"""Pub/sub invalidation: delivery between buses and recovery after the subscription drops."""

from __future__ import annotations

import asyncio
from typing import Any

from nova.identity.invalidation import InvalidationBus


async def _until(cond: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_delivery_and_resubscribe_clears_caches(
    namespace: str, redis_url: str, redis_client: Any
) -> None:
    a = InvalidationBus(redis_url, namespace)
    b = InvalidationBus(redis_url, namespace)
    seen_a: list[tuple[str, str]] = []
    seen_b: list[tuple[str, str]] = []
    a.subscribe(lambda kind, ident: seen_a.append((kind, ident)))
    b.subscribe(lambda kind, ident: seen_b.append((kind, ident)))
    await a.start()
    await b.start()
    try:
        await asyncio.wait_for(a.subscribed.wait(), 10)
        await asyncio.wait_for(b.subscribed.wait(), 10)
        assert seen_b == [("all", "")]  # a fresh subscription starts from empty caches
        await a.publish("key", "k1")
        await _until(lambda: ("key", "k1") in seen_b)
        assert seen_a.count(("key", "k1")) == 1  # local dispatch once, own echo ignored

        # Drop b's subscription connection (only b's, found by its client name).
        clients = await redis_client.client_list()
        ids = [c["id"] for c in clients if c.get("name") == b.client_name]
        assert ids
        for cid in ids:
            await redis_client.client_kill_filter(_id=cid)
        await _until(lambda: seen_b.count(("all", "")) == 2)  # reconnected and flushed its caches
        await asyncio.wait_for(b.subscribed.wait(), 10)
        await a.publish("user", "u1")
        await _until(lambda: ("user", "u1") in seen_b)
    finally:
        await a.stop()
        await b.stop()


async def test_logouts_outlive_the_message_for_processes_that_start_later(
    namespace: str, redis_url: str, redis_client: Any
) -> None:
    """A process that was not subscribed when a token was logged out (restart, new replica) gets
    the logouts still in force on subscription; expired ones are not replayed."""
    import time

    ns = f"{namespace}-jti"
    a = InvalidationBus(redis_url, ns)
    now = time.time()
    await a.publish("jti", f"live:{now + 600}")
    await a.publish("jti", f"stale:{now - 1}")
    late = InvalidationBus(redis_url, ns)
    seen: list[tuple[str, str]] = []
    late.subscribe(lambda kind, ident: seen.append((kind, ident)))
    await late.start()
    try:
        await asyncio.wait_for(late.subscribed.wait(), 10)
        await _until(lambda: any(kind == "jti" for kind, _ in seen))
        assert seen[0] == ("all", "")
        jtis = [ident.partition(":")[0] for kind, ident in seen if kind == "jti"]
        assert jtis == ["live"]
        assert 0 < await redis_client.ttl(late.revoked_jti_key) <= 660
    finally:
        await a.stop()
        await late.stop()
