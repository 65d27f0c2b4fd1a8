"""Admission contract: the Redis (Lua) and in-process backends pass the same tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nova.config import Settings
from nova.errors import RateLimited, ServiceUnavailable
from nova.identity.principal import KeyLimits, Principal
from nova.limits.admission import Admission
from nova.limits.memory_backend import MemoryAdmission
from nova.limits.redis_backend import RedisAdmission


def key_principal(user: str | None = None, **limits: Any) -> Principal:
    user_rpm = limits.pop("user_rpm", None)
    return Principal(
        user_id=user or uuid.uuid4().hex,
        role="user",
        key_id=uuid.uuid4().hex,
        limits=KeyLimits(**limits),
        user_requests_per_minute=user_rpm,
    )


@pytest.fixture(params=["redis", "memory"])
async def admission(
    request: pytest.FixtureRequest, namespace: str, redis_url: str
) -> AsyncIterator[Admission]:
    settings = Settings(env="test", redis_url=redis_url, redis_namespace=namespace)
    if request.param == "redis":
        adm = RedisAdmission.from_settings(settings)
        yield adm
        await adm.aclose()
    else:
        yield MemoryAdmission(settings)


async def test_requests_per_minute_per_key(admission: Admission) -> None:
    p = key_principal(requests_per_minute=5)
    leases = [await admission.acquire(p, "m", 0) for _ in range(5)]
    assert [lease.headers["x-ratelimit-remaining-requests"] for lease in leases] == ["4", "3", "2", "1", "0"]
    assert leases[0].headers["x-ratelimit-limit-requests"] == "5"
    assert leases[0].headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(RateLimited) as exc:
        await admission.acquire(p, "m", 0)
    h = exc.value.headers
    assert exc.value.status == 429 and 1 <= int(h["Retry-After"]) <= 60
    assert h["x-ratelimit-limit-requests"] == "5" and h["x-ratelimit-remaining-requests"] == "0"
    # Another key is unaffected.
    await admission.acquire(key_principal(requests_per_minute=5), "m", 0)


async def test_requests_per_minute_per_user_spans_keys(admission: Admission) -> None:
    user = uuid.uuid4().hex
    k1 = key_principal(user, user_rpm=3)
    k2 = key_principal(user, user_rpm=3)
    await admission.acquire(k1, "m", 0)
    await admission.acquire(k2, "m", 0)
    await admission.acquire(k1, "m", 0)
    with pytest.raises(RateLimited, match="user"):
        await admission.acquire(k2, "m", 0)


async def test_tokens_reserved_then_settled(admission: Admission) -> None:
    p = key_principal(tokens_per_minute=1000)
    a = await admission.acquire(p, "m", 600)
    assert a.headers["x-ratelimit-limit-tokens"] == "1000"
    assert a.headers["x-ratelimit-remaining-tokens"] == "400"
    with pytest.raises(RateLimited, match="tokens") as exc:
        await admission.acquire(p, "m", 600)
    assert exc.value.headers["x-ratelimit-remaining-tokens"] == "400"
    await a.settle(100)  # real usage was smaller: 900 free again
    b = await admission.acquire(p, "m", 600)
    assert b.headers["x-ratelimit-remaining-tokens"] == "300"
    await b.settle(800)  # and larger: charged in full
    with pytest.raises(RateLimited):
        await admission.acquire(p, "m", 200)
    c = await admission.acquire(p, "m", 100)
    assert c.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_request_larger_than_token_limit(admission: Admission) -> None:
    with pytest.raises(RateLimited, match="too large"):
        await admission.acquire(key_principal(tokens_per_minute=100), "m", 101)


async def test_concurrency_slots_freed_on_settle(admission: Admission) -> None:
    p = key_principal(max_concurrent=2)
    a = await admission.acquire(p, "m", 10)
    await admission.acquire(p, "m", 10)
    with pytest.raises(RateLimited, match="concurrent"):
        await admission.acquire(p, "m", 10)
    await a.settle(10)
    await a.settle(10)  # idempotent: must not free a second slot
    await admission.acquire(p, "m", 10)
    with pytest.raises(RateLimited):
        await admission.acquire(p, "m", 10)


async def test_monthly_budget(admission: Admission) -> None:
    p = key_principal(monthly_token_budget=1000)
    a = await admission.acquire(p, "m", 600)
    with pytest.raises(RateLimited, match="budget") as exc:
        await admission.acquire(p, "m", 600)
    assert exc.value.code == "insufficient_quota"
    await a.settle(100)
    await admission.acquire(p, "m", 600)


async def test_unlimited_principal_has_no_headers(admission: Admission) -> None:
    lease = await admission.acquire(key_principal(), "m", 10**9)
    assert lease.headers == {}
    await lease.settle(5)


async def test_concurrent_acquires_are_exact(admission: Admission) -> None:
    p = key_principal(requests_per_minute=50, tokens_per_minute=10_000)

    async def one() -> bool:
        try:
            await admission.acquire(p, "m", 100)
            return True
        except RateLimited:
            return False

    results = await asyncio.gather(*(one() for _ in range(300)))
    assert sum(results) == 50


async def test_memory_window_slides(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_000]
    adm = MemoryAdmission()
    monkeypatch.setattr(adm, "_now", lambda: clock[0])
    p = key_principal(requests_per_minute=2, tokens_per_minute=100)
    await adm.acquire(p, "m", 50)
    clock[0] += 30_000
    await adm.acquire(p, "m", 50)
    with pytest.raises(RateLimited) as exc:
        await adm.acquire(p, "m", 1)
    assert exc.value.headers["Retry-After"] == "30"
    clock[0] += 30_001  # the first request left the window; the second has not
    lease = await adm.acquire(p, "m", 50)
    assert lease.headers["x-ratelimit-remaining-requests"] == "0"
    assert lease.headers["x-ratelimit-remaining-tokens"] == "0"


async def _blackhole() -> tuple[asyncio.AbstractServer, int, list[asyncio.StreamWriter]]:
    """A TCP server that accepts and never answers: the worst case for a Redis client."""
    held: list[asyncio.StreamWriter] = []

    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], held


@pytest.mark.parametrize("mode", ["open", "closed"])
@pytest.mark.parametrize("target", ["refused", "blackhole"])
async def test_redis_unreachable_never_hangs(mode: str, target: str, namespace: str) -> None:
    server = None
    port = 1
    if target == "blackhole":
        server, port, held = await _blackhole()
    settings = Settings(
        env="test", redis_url=f"redis://127.0.0.1:{port}/0", redis_namespace=namespace,
        limits_fail_mode=mode, redis_socket_timeout=0.2,
    )  # fmt: skip
    adm = RedisAdmission.from_settings(settings)
    p = key_principal(requests_per_minute=1)
    try:
        for _ in range(5):  # after 3 failed round trips Redis is skipped: no timeout per request
            if mode == "open":
                lease = await asyncio.wait_for(adm.acquire(p, "m", 1), timeout=5)
                assert lease.headers == {}
                await lease.settle(1)
            else:
                with pytest.raises(ServiceUnavailable):
                    await asyncio.wait_for(adm.acquire(p, "m", 1), timeout=5)
        assert adm._skip_until > 0  # the breaker tripped
    finally:
        await adm.aclose()
        if server is not None:
            for w in held:
                w.close()
            server.close()


async def test_redis_cancelled_acquire_releases_its_slot(namespace: str, redis_url: str) -> None:
    adm = RedisAdmission.from_settings(Settings(env="test", redis_url=redis_url, redis_namespace=namespace))
    p = key_principal(max_concurrent=1, tokens_per_minute=1000)
    try:
        task = asyncio.create_task(adm.acquire(p, "m", 600))
        await asyncio.sleep(0)  # the script is queued (and may already be on the wire)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # the orphaned admission is given back in the background
            try:
                lease = await adm.acquire(p, "m", 600)
                break
            except RateLimited:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("slot of the cancelled acquire was never released")
        assert lease.headers["x-ratelimit-remaining-tokens"] == "400"
    finally:
        await adm.aclose()


class _One:
    """One named script of a PipelinedScripts runner, called like a function."""

    def __init__(self, source: str, url: str = "redis://127.0.0.1:6379/0", timeout: float = 1.0) -> None:
        from nova.limits.scripts import PipelinedScripts

        self.runner = PipelinedScripts(url, {"s": source}, timeout=timeout, connect_timeout=1.0)

    def call(self, keys: list[str], args: list[Any], defer: bool = False) -> Any:
        return self.runner.call("s", keys, args, defer=defer)

    async def aclose(self) -> None:
        await self.runner.aclose()


def _scripts(source: str, url: str = "redis://127.0.0.1:6379/0", timeout: float = 1.0) -> _One:
    return _One(source, url, timeout)


async def test_scripts_load_missing_script_and_keep_order(redis_client: Any) -> None:
    source = f"-- {uuid.uuid4().hex}\nreturn tonumber(ARGV[1]) * 2"  # never loaded: first call is NOSCRIPT
    runner = _scripts(source)
    try:
        results = await asyncio.gather(*(runner.call([], [i]) for i in range(50)))
        assert results == [i * 2 for i in range(50)]
        assert await runner.call([], [21]) == 42  # same connection, script now cached
        deferred = runner.call([], [1], defer=True)  # leaves with the next write, or by itself
        assert await asyncio.wait_for(deferred, 1) == 2
        deferred = runner.call([], [2], defer=True)
        assert await runner.call([], [3]) == 6 and deferred.done() and deferred.result() == 4
        bad = _scripts("return redis.call('NOPE')")
        with pytest.raises(ResponseError):
            await bad.call([], [])
        await bad.aclose()
    finally:
        await runner.aclose()


async def test_scripts_reconnect_after_the_connection_drops_and_time_out_without_hanging(
    redis_client: Any,
) -> None:
    """A dropped connection fails only the calls in flight (redis ConnectionError) and the
    next call reconnects; a Redis that stops answering fails calls by their deadline; SELECT from
    the URL is sent first."""
    from tests.memory.proxy import TcpProxy

    proxy = TcpProxy(6379).start()
    runner = _scripts("return 1", url=f"redis://127.0.0.1:{proxy.port}/0")
    try:
        assert await runner.call([], []) == 1
        proxy.cut()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(runner.call([], []), 2)
        proxy.restore()
        assert await runner.call([], []) == 1
    finally:
        await runner.aclose()
        proxy.stop()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):  # accepts and reads, never answers
            pass

    mute = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = mute.sockets[0].getsockname()[1]
    hung = _scripts("return 1", url=f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(hung.call([], []), 2)
    finally:
        await hung.aclose()
        mute.close()

    selected = _scripts("return redis.call('INCR', KEYS[1])", url="redis://127.0.0.1:6379/3")
    key = f"novatest-db3-{uuid.uuid4().hex[:6]}"
    try:
        assert await selected.call([key], []) == 1
        db3 = redis_client.connection_pool.connection_kwargs.copy()
        import redis.asyncio as aioredis

        other = aioredis.Redis(host=db3.get("host", "127.0.0.1"), port=db3.get("port", 6379), db=3)
        assert await other.get(key) == b"1" and await redis_client.get(key) is None
        await other.delete(key)
        await other.aclose()
    finally:
        await selected.aclose()


@pytest.mark.parametrize("backend", ["redis", "memory"])
async def test_budget_seeded_once_from_usage(backend: str, namespace: str, redis_url: str) -> None:
    """A lost budget counter (restart) is rebuilt from month-to-date usage, once, not per request."""
    calls: list[str] = []

    async def seeder(key_id: str, since: Any) -> int:
        calls.append(key_id)
        return 900

    settings = Settings(env="test", redis_url=redis_url, redis_namespace=namespace)
    adm: Any = (
        RedisAdmission.from_settings(settings, seeder)
        if backend == "redis"
        else MemoryAdmission(settings, seeder)
    )
    p = key_principal(monthly_token_budget=1000)
    try:
        with pytest.raises(RateLimited, match="budget"):
            await adm.acquire(p, "m", 200)
        lease = await adm.acquire(p, "m", 100)
        await lease.settle(100)
        with pytest.raises(RateLimited, match="budget"):
            await adm.acquire(p, "m", 1)
        assert calls == [p.key_id]
    finally:
        if backend == "redis":
            await adm.aclose()


async def test_memory_prunes_idle_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [5_000_000]
    adm = MemoryAdmission()
    monkeypatch.setattr(adm, "_now", lambda: clock[0])
    idle = key_principal(requests_per_minute=5, user_rpm=5)
    busy = key_principal(max_concurrent=1)
    await adm.acquire(idle, "m", 0)
    held = await adm.acquire(busy, "m", 0)
    clock[0] += 61_000
    adm._prune()
    assert idle.key_id not in adm._keys and idle.user_id not in adm._users
    assert busy.key_id in adm._keys  # a lease is still open
    await held.settle(0)
    lease = await adm.acquire(idle, "m", 0)
    assert lease.headers["x-ratelimit-remaining-requests"] == "4"
