"""Benchmark (report only): ``ConversationMemory.prepare`` alone on one uvloop, Redis hit, a
~2,000-token history, token counts from a fake vLLM ``/tokenize`` in another process.

Separates memory's own latency from the in-thread gateway harness (client, server and fake
sharing one interpreter). Run: cd backend && ../.venv/bin/python -m tests.memory.bench_prepare
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import uvloop

from nova.config import Settings
from nova.identity.principal import Principal
from nova.llm.models_file import ModelsFile
from nova.llm.pool import UpstreamPool
from nova.llm.protocol import parse_request
from nova.llm.relay import Outcome
from nova.memory.components import build_memory
from nova.store.db import Database
from tests.gateway import free_port
from tests.memory.bench_memory import _wait_port, pct

CONVERSATIONS, TURNS = 50, 10


async def main() -> None:
    port = free_port()
    fake = subprocess.Popen(  # noqa: ASYNC220 - once, before measuring
        [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port)], stdout=subprocess.DEVNULL
    )
    await _wait_port(port)
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        env="test",
        data_dir=tmp,
        redis_url="redis://127.0.0.1:6379/0",
        redis_namespace=f"novabench-{uuid.uuid4().hex[:6]}",
        memory_flush_linger_ms=200,
    )
    from nova.store import migrate

    await migrate.upgrade_async(settings)  # SQLite in tmp: only misses and the flusher touch it
    pool = UpstreamPool(settings)
    pool.load(
        ModelsFile.model_validate(
            {"models": {"m": {"deployments": [{"base_url": f"http://127.0.0.1:{port}/v1"}]}}}
        )
    )
    db = Database(settings)
    # BENCH_ESTIMATE=1: no /tokenize call (models whose server has none): isolates load + assembly
    comps = build_memory(settings, db, None if os.environ.get("BENCH_ESTIMATE") else pool)
    assert comps is not None
    await comps.start()
    convs = [await comps.conversations.create("u", "bench", "m") for _ in range(CONVERSATIONS)]
    principal = Principal(user_id="u", role="user")
    words = " ".join(["word"] * 100)
    times: list[float] = []
    cpu: list[float] = []
    phase: dict[str, list[float]] = {"session": [], "count": [], "store": []}

    def wrap(obj: object, name: str, key: str) -> None:
        fn = getattr(obj, name)

        async def timed(*a: object, **kw: object) -> object:
            t = time.perf_counter()
            try:
                return await fn(*a, **kw)
            finally:
                phase[key].append(time.perf_counter() - t)

        setattr(obj, name, timed)

    wrap(comps.memory.store, "get", "session")
    wrap(comps.memory.counter, "_count_one", "count")
    wrap(comps.memory.store, "append_queued", "store")
    misses: list[float] = []
    for i in range(CONVERSATIONS * TURNS):
        conv, turn_no = convs[i % CONVERSATIONS], i // CONVERSATIONS  # conversations interleaved
        body = {
            "model": "m",
            "conversation_id": conv.id,
            "messages": [{"role": "user", "content": f"{i} {words}"}],
        }
        view = parse_request(orjson.dumps(body), "chat", None)
        t0 = time.perf_counter()
        c0 = time.process_time()
        turn = await comps.memory.prepare(
            principal, view, "m", 4800 if os.environ.get("BENCH_ESTIMATE") else 3300
        )
        (times if turn_no else misses).append(time.perf_counter() - t0)
        if turn_no:
            cpu.append(time.process_time() - c0)
        comps.memory.complete(turn, Outcome(status=200, complete=True, content=[words]))
        await comps.memory.drain()
        await asyncio.sleep(0.002)
    hits = times  # every turn after a conversation's first (which loads it from the database)
    for key, vals in phase.items():
        print(f"  {key}: p50 {pct(vals, 0.5) * 1e3:.3f} ms")
    print(f"  CPU time per prepare: p50 {pct(cpu, 0.5) * 1e3:.3f} ms")
    print(f"first turn (new conversation, seeded at create): p50 {pct(misses, 0.5) * 1e3:.3f} ms")
    n_last = len(view.body["messages"])
    print(f"{CONVERSATIONS} x {TURNS} turns; last prompt {n_last} messages, ~{n_last * 100} tokens")
    load = os.getloadavg()[0]
    how = "estimated counts" if os.environ.get("BENCH_ESTIMATE") else "/tokenize over HTTP"
    print(f"prepare (Redis hit, {how}): p50 {pct(hits, 0.5) * 1e3:.3f} ms, "
          f"p95 {pct(hits, 0.95) * 1e3:.3f} ms (n={len(hits)}, load average {load:.1f})")  # fmt: skip
    await comps.stop()
    await db.dispose()
    await pool.close()
    fake.terminate()
    fake.wait(5)


if __name__ == "__main__":
    uvloop.run(main())  # the fake upstream child is terminated at the end of main()
