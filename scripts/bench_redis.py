"""Redis client choice for the rate-limit scripts, by measurement: the same EVALSHA through
redis-py's asyncio client (one call, and a one-call pipeline as the former batcher sent it) and
through ``nova.limits.scripts.PipelinedScripts``, sequentially (latency) and 64 at once
(throughput), reporting wall and CPU µs per call.

    taskset -c 1 .venv/bin/python scripts/bench_redis.py --url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import uvloop
from nova.limits.scripts import PipelinedScripts

SOURCE = "return redis.call('INCR', KEYS[1])"
KEY = "nova-bench-redis"


async def measure(
    name: str, call: Callable[[], Awaitable[Any]], n: int, conc: int
) -> None:
    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = (n // conc) * conc
    print(
        f"{name:<28} c={conc:<3} {wall / done * 1e6:7.1f} µs wall/call  {cpu / done * 1e6:7.1f} µs CPU/call"
    )


async def main(url: str, n: int) -> None:
    client = aioredis.Redis.from_url(url)
    sha = await client.script_load(SOURCE)
    runner = PipelinedScripts(url, SOURCE, timeout=1.0, connect_timeout=1.0)

    async def evalsha() -> Any:
        return await client.evalsha(sha, 1, KEY)

    async def pipeline() -> Any:
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(sha, 1, KEY)
            return await pipe.execute()

    async def pipelined() -> Any:
        return await runner.call([KEY], [])

    for conc in (1, 64):
        for name, fn in (
            ("redis-py evalsha", evalsha),
            ("redis-py pipeline", pipeline),
            ("PipelinedScripts", pipelined),
        ):
            await fn()  # warm: connection and script cache
            await measure(name, fn, n, conc)
    await runner.aclose()
    await client.delete(KEY)
    await client.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("-n", type=int, default=20_000)
    args = ap.parse_args()
    uvloop.run(main(args.url, args.n))
