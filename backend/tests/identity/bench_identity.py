"""Timing script (not a test): µs per request of authenticate (cache hit) + acquire + settle +
usage record, for the in-process and Redis limit backends.

Run: ../.venv/bin/python tests/identity/bench_identity.py  (from backend/; needs Postgres+Redis)
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

from nova.config import Settings
from nova.identity.components import build_identity
from nova.identity.service import KeySpec
from nova.limits.memory_backend import MemoryAdmission
from nova.limits.redis_backend import RedisAdmission
from nova.store.usage import UsageEvent

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        env="test", data_dir=tmp, secret_key=secrets.token_urlsafe(40), jwt_secret=secrets.token_urlsafe(40),
        redis_url="redis://127.0.0.1:6379/0", redis_namespace=f"novabench-{uuid.uuid4().hex[:6]}",
        usage_flush_ms=200,
    )  # fmt: skip
    c = build_identity(settings)
    await c.start()
    user = await c.service.create_user(f"bench-{uuid.uuid4().hex[:6]}", None)
    # Generous limits so nothing is refused, but every limit is evaluated.
    spec = KeySpec(requests_per_minute=10**7, tokens_per_minute=10**12, max_concurrent=10**6,
                   monthly_token_budget=10**15)  # fmt: skip
    _, key = await c.service.create_key(user.id, spec)
    await c.authenticator.authenticate(key)  # warm the cache

    async def auth_only() -> None:
        await c.authenticator.authenticate(key)

    async def full(admission: object) -> None:
        p = await c.authenticator.authenticate(key)
        lease = await admission.acquire(p, "m", 100)  # type: ignore[attr-defined]
        await lease.settle(120)
        c.usage.record(UsageEvent("r", p.user_id, p.key_id, "m", "/v1/chat/completions", 200, 100, 20, 5.0))

    async def timeit(label: str, fn: object, n: int = N) -> None:
        for _ in range(200):
            await fn()  # type: ignore[operator]
        t = time.perf_counter()
        for _ in range(n):
            await fn()  # type: ignore[operator]
        us = (time.perf_counter() - t) / n * 1e6
        print(f"{label:<62} {us:8.1f} µs/request (sequential, n={n})")

    memory = MemoryAdmission(settings)
    redis_adm = c.admission
    assert isinstance(redis_adm, RedisAdmission)
    await timeit("authenticate (API key, cache hit)", auth_only, N * 4)
    await timeit("authenticate + acquire + settle + usage (in-process limits)", lambda: full(memory))
    await timeit("authenticate + acquire + settle + usage (Redis limits, 2 RTT)", lambda: full(redis_adm))

    # Concurrency 64 on the Redis path: throughput of the identity stack alone, one process.
    sem = asyncio.Semaphore(64)

    async def one() -> None:
        async with sem:
            await full(redis_adm)

    t = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(N)))
    dt = time.perf_counter() - t
    print(f"{'Redis path, 64 concurrent':<62} {N / dt:8.0f} req/s ({dt / N * 1e6:.1f} µs/request amortized)")
    await c.stop()


if __name__ == "__main__":
    asyncio.run(main())
