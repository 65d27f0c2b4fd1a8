"""Batched usage writer: the ``UsageSink`` the gateway uses when a database is configured.

``record`` appends to an in-memory buffer (no I/O, no await) and a background task inserts
batches every ``usage_flush_events`` events or ``usage_flush_ms`` milliseconds. A failed insert
keeps the batch and retries with backoff; on shutdown the buffer is drained, and whatever the
database still refuses is appended to a JSONL spool file that is replayed on the next start,
so no event is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import orjson

from nova.config import Settings
from nova.observability.metrics import STORE_QUEUE_DEPTH, USAGE_EVENTS
from nova.store.db import Database
from nova.store.repos.usage import UsageRepository
from nova.store.usage import UsageEvent

log = logging.getLogger("nova.usage")


class BatchedUsageWriter:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._batch = max(1, settings.usage_flush_events)
        self._interval = max(0.001, settings.usage_flush_ms / 1000)
        self._spool = settings.usage_spool_file or settings.data_dir / "usage-spool.jsonl"
        self._buffer: deque[UsageEvent] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.written = 0

    # -- request path ---------------------------------------------------------------------
    def record(self, event: UsageEvent) -> None:
        self._buffer.append(event)
        STORE_QUEUE_DEPTH.inc()
        if len(self._buffer) >= self._batch:
            self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self._replay_spool()
        self._task = asyncio.create_task(self._run(), name="nova-usage-writer")

    async def stop(self) -> None:
        """Drain everything; events the database refuses go to the spool file."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._buffer:
            if not await self._flush_once():
                await self._spool_all()
                break

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> None:
        """Write everything buffered now (tests, admin reads that want fresh numbers)."""
        while self._buffer:
            if not await self._flush_once():
                return

    # -- internals --------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = self._interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            if self._stopping:
                return
            ok = True
            while self._buffer and ok:
                ok = await self._flush_once()
            backoff = self._interval if ok else min(backoff * 2, 5.0)

    async def _flush_once(self) -> bool:
        async with self._lock:  # the background task and flush()/stop() must not write one batch twice
            return await self._flush_locked()

    async def _flush_locked(self) -> bool:
        n = min(len(self._buffer), self._batch * 4)
        if n == 0:
            return True
        batch = [self._buffer[i] for i in range(n)]
        try:
            async with self._db.session() as session, session.begin():
                await UsageRepository(session).insert_many(batch)
        except Exception:
            log.warning("usage flush of %d events failed; will retry", n, exc_info=True)
            USAGE_EVENTS.labels(outcome="retry").inc(n)
            return False
        for _ in range(n):
            self._buffer.popleft()
        STORE_QUEUE_DEPTH.dec(n)
        USAGE_EVENTS.labels(outcome="written").inc(n)
        self.written += n
        return True

    async def _spool_all(self) -> None:
        events = list(self._buffer)
        lines = b"".join(orjson.dumps(asdict(e)) + b"\n" for e in events)
        await asyncio.to_thread(_append, self._spool, lines)
        self._buffer.clear()
        STORE_QUEUE_DEPTH.dec(len(events))
        USAGE_EVENTS.labels(outcome="spooled").inc(len(events))
        log.error("database unavailable at shutdown: %d usage events spooled to %s", len(events), self._spool)

    async def _replay_spool(self) -> None:
        if not self._spool.exists():
            return
        claimed = self._spool.with_suffix(".replaying")
        await asyncio.to_thread(self._spool.replace, claimed)
        raw = await asyncio.to_thread(claimed.read_bytes)
        for line in raw.splitlines():
            if not line.strip():
                continue
            data = orjson.loads(line)
            data["created_at"] = datetime.fromisoformat(data["created_at"])
            self.record(UsageEvent(**data))
        await self.flush()
        if self._buffer:
            # Still unreachable: put them back for the next attempt (kept in the buffer too).
            await self._spool_all()
        await asyncio.to_thread(claimed.unlink)
        log.info("replayed usage spool %s", claimed)


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(data)
        f.flush()
