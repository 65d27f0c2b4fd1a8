"""Benchmark (report only, not a test): conversation memory through a live gateway.

50 conversations x 10 turns, ~2,000-token histories (100-word questions, 100-token answers),
fake vLLM upstream, Redis session memory + Redis stream queue + Postgres. Reports:
- p50/p95 of ``ConversationMemory.prepare`` (load + count + assemble + durable enqueue) on Redis hits;
- the flusher's sustained write rate and the largest queue backlog seen during the run;
- the flusher's raw capacity: 20,000 queued writes drained into Postgres.

Run: cd backend && ../.venv/bin/python -m tests.memory.bench_memory
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from nova.config import Settings
from nova.store import migrate
from nova.store.base import new_id, utcnow
from nova.store.conversations import ConversationRepository, MessageWrite
from nova.store.db import Database
from tests.gateway import free_port
from tests.memory.harness import auth, start_gateway

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONVERSATIONS, TURNS, WORDS, ANSWER_TOKENS = 50, 10, 100, 100


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main() -> None:
    schema = f"nova_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    tmp = Path(tempfile.mkdtemp())
    base: dict[str, Any] = {
        "secret_key": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(32),
        "database_url": PG_URL,
        "database_schema": schema,
        "redis_url": "redis://127.0.0.1:6379/0",
        "redis_namespace": f"novabench-{uuid.uuid4().hex[:6]}",
        "memory_backend": "redis",
        "log_level": "WARNING",
        "health_interval": 5.0,
    }
    await migrate.upgrade_async(Settings(env="test", data_dir=tmp, **base))
    port = free_port()
    fake_proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
        [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port), "--tokens", str(ANSWER_TOKENS)],
        stdout=subprocess.DEVNULL,
    )
    fake = _Remote(port)
    await _wait_port(port)
    # uvloop, as `nova serve` runs it
    gw = start_gateway(tmp, fake, context_window=8192, uvicorn_loop="uvloop", **base)  # type: ignore[arg-type]
    comps = gw.app.state.memory
    memory = comps.memory
    timings: list[float] = []
    original = memory.prepare

    async def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await original(*args)
        finally:
            timings.append(time.perf_counter() - t0)

    memory.prepare = timed
    phases: dict[str, list[float]] = {"session": [], "count": [], "store+enqueue": []}

    def wrap(obj: Any, name: str, key: str) -> None:
        fn = getattr(obj, name)

        async def timed_phase(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a, **kw)
            finally:
                phases[key].append(time.perf_counter() - t)

        setattr(obj, name, timed_phase)

    wrap(memory, "session", "session")
    wrap(memory.counter, "count", "count")
    wrap(memory, "_store_new", "store+enqueue")
    backlog_max = 0
    stop = asyncio.Event()

    async def watch_backlog() -> None:
        nonlocal backlog_max
        db_probe = comps.queue
        while not stop.is_set():
            backlog_max = max(backlog_max, await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(db_probe.backlog(), gw_loop)))  # fmt: skip
            await asyncio.sleep(0.05)

    gw_loop = _loop_of(gw)
    question = " ".join(["word"] * WORDS)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CONVERSATIONS)) as client:
        convs = []
        for _ in range(CONVERSATIONS):
            r = await client.post(f"{gw.url}/v1/conversations", json={}, headers=auth("alice"))
            convs.append(r.json()["id"])

        async def converse(conv: str, think: float = 0.0) -> None:
            for turn in range(TURNS):
                await asyncio.sleep(think)  # a person reads the answer before the next question
                text = f"{conv} {turn} {question}"  # unique: no token-count cache hits
                body = {"model": "fake-model", "conversation_id": conv, "stream": turn % 2 == 0,
                        "messages": [{"role": "user", "content": text}]}  # fmt: skip
                r = await client.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth("alice"))
                assert r.status_code == 200, r.text

        rtt: list[float] = []
        import redis.asyncio as aioredis

        r_client = aioredis.Redis.from_url(base["redis_url"])
        for _ in range(200):
            t = time.perf_counter()
            await r_client.ping()
            rtt.append(time.perf_counter() - t)
        await r_client.aclose()
        load = os.getloadavg()[0]
        print(f"baseline: Redis PING round trip p50 {pct(rtt, 0.5) * 1e3:.3f} ms (load average {load:.1f})")
        # 1) latency: one conversation at a time (added latency, not queueing behind other requests)
        for c in convs[:5]:
            await converse(c, think=0.3)
        seq_hits = [t for i, t in enumerate(timings) if i % TURNS]
        n_seq = len(timings)
        print(f"sequential, prepare on Redis hit: p50 {pct(seq_hits, 0.5) * 1e3:.3f} ms, "
              f"p95 {pct(seq_hits, 0.95) * 1e3:.3f} ms (n={len(seq_hits)})")  # fmt: skip
        for key, vals in phases.items():
            print(f"  {key}: p50 {pct(vals, 0.5) * 1e3:.3f} ms")
        del timings[:]
        # 2) load: the other 45 conversations at once
        convs = convs[5:]
        watcher = asyncio.create_task(watch_backlog())
        applied0 = comps.flusher.applied
        t0 = time.perf_counter()
        await asyncio.gather(*(converse(c) for c in convs))
        wall = time.perf_counter() - t0
        # the answers are stored off the response path: wait for the queue to empty
        t_drain = time.perf_counter()
        deadline = time.monotonic() + 120
        while comps.flusher.applied - applied0 < len(convs) * TURNS * 2 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        drain = time.perf_counter() - t_drain
        stop.set()
        await watcher
    hits = [t for i, t in enumerate(timings) if i >= len(convs)]  # first turns load from Postgres
    print(f"{len(convs)} concurrent conversations: {len(timings)} requests in {wall:.2f}s "
          f"({len(timings) / wall:.0f} req/s); last history ~{2 * (TURNS - 1) * WORDS} tokens")  # fmt: skip
    print(f"  prepare under load (includes waiting for the loop): p50 {pct(hits, 0.5) * 1e3:.3f} ms, "
          f"p95 {pct(hits, 0.95) * 1e3:.3f} ms, mean {statistics.mean(hits) * 1e3:.3f} ms")  # fmt: skip
    del n_seq
    writes = len(convs) * TURNS * 2
    print(f"DB writes: {writes} in {wall:.2f}s = {writes / wall:.0f}/s sustained; max backlog {backlog_max}; "
          f"queue empty {drain * 1e3:.0f} ms after the last response")  # fmt: skip
    gw.stop()
    fake_proc.terminate()
    fake_proc.wait(5)

    # raw flusher capacity: 20,000 writes queued, then drained
    settings = Settings(env="test", data_dir=tmp, **base)
    db = Database(settings)
    from nova.memory.components import build_memory

    comps2 = build_memory(settings, db, None)
    assert comps2 is not None
    async with db.session() as s, s.begin():
        conv_ids = [(await ConversationRepository(s).create("bench")).id for _ in range(100)]
    n = 20_000
    now = utcnow()
    batch = [
        MessageWrite(new_id(), conv_ids[i % 100], 1000 + i, "user", question, WORDS, "complete", None, now)
        for i in range(n)
    ]
    await comps2.queue.start()
    for i in range(0, n, 500):
        await comps2.queue.append(batch[i : i + 500])
    t0 = time.perf_counter()
    await comps2.flusher.start()
    deadline = time.monotonic() + 120
    while comps2.flusher.applied < n and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    cap = time.perf_counter() - t0
    print(
        f"flusher capacity: {n} writes in {cap:.2f}s = {n / cap:.0f}/s (batch {settings.memory_flush_batch})"
    )
    await comps2.stop()
    await db.dispose()
    await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await conn.close()


class _Remote:
    """The fake upstream running in its own process (so it does not share the gateway's GIL)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"


async def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("fake upstream did not start")


def _loop_of(gw: Any) -> asyncio.AbstractEventLoop:
    """The gateway thread's event loop (captured from one of its tasks)."""
    loop: asyncio.AbstractEventLoop = gw.app.state.memory.flusher._task.get_loop()
    return loop


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    asyncio.run(main())
