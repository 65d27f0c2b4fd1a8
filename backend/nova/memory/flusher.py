"""Background flusher: applies queued conversation writes to the database, in order, batched.

A batch is acknowledged only after its transaction commits. While the database is unreachable
the same batch is retried with exponential backoff (never dropped); a write the database refuses
while it *is* reachable (a data error, not an outage) is parked in the queue's dead letter so one
bad row cannot block the conversation queue forever. ``stop`` drains what it can in
``drain_seconds``; the rest stays durable in the queue for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import text

from nova.memory.queue import WriteQueue
from nova.observability.metrics import STORE_QUEUE_DEPTH
from nova.store.conversations import ConversationRepository, Write
from nova.store.db import Database

log = logging.getLogger("nova.memory")


class Flusher:
    def __init__(
        self, queue: WriteQueue, db: Database, batch: int, max_backoff: float, linger: float = 0.0
    ) -> None:
        self._queue = queue
        self._linger = linger
        self._db = db
        self._batch = max(1, batch)
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._draining = False
        self.applied = 0
        self.failures = 0
        self.dead = 0
        self._reported = 0  # this queue's share of the shared nova_store_queue_depth gauge

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="nova-memory-flusher")

    async def stop(self, drain_seconds: float) -> None:
        """Apply what is queued (up to ``drain_seconds``), then stop."""
        if self._task is None:
            return
        self._draining = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_seconds)
        except TimeoutError:
            log.warning("memory flusher stopped with writes still queued; they will be replayed on start")
        self._stopping.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        STORE_QUEUE_DEPTH.dec(self._reported)
        self._reported = 0

    async def _run(self) -> None:
        backoff = 0.05
        pending: list[tuple[str, Write]] = []
        # Checked every round: a driver may swallow the task's cancellation while connecting.
        while not self._stopping.is_set():
            await self._report()
            if not pending:
                try:
                    pending = await self._queue.read(self._batch, 0.05 if self._draining else 1.0)
                except Exception:
                    log.warning("memory write queue unreadable; retrying", exc_info=True)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                if not pending:
                    if self._draining:
                        return
                    continue
                if len(pending) < self._batch and self._linger and not self._draining:
                    # Let a batch build up: fewer transactions, and the database work runs after
                    # the request that queued the write has reached the model, not during it.
                    await self._sleep(self._linger)
                    with contextlib.suppress(Exception):
                        pending += await self._queue.read(self._batch - len(pending), 0)
            ok = await self._apply(pending)
            if ok:
                backoff = 0.05
                pending = []
                continue
            self.failures += 1
            await self._sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _report(self) -> None:
        try:
            depth = await self._queue.backlog()
        except Exception:
            return
        STORE_QUEUE_DEPTH.inc(depth - self._reported)
        self._reported = depth

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _apply(self, entries: list[tuple[str, Write]]) -> bool:
        writes = [w for _, w in entries]
        try:
            async with self._db.session() as s, s.begin():
                await ConversationRepository(s).apply(writes)
        except Exception as err:
            if not await self._reachable():
                log.warning("database unreachable; %d conversation writes wait in the queue", len(writes))
                return False
            log.warning("conversation batch refused (%r); applying one by one", err)
            if not await self._apply_singly(entries):
                return False
        try:
            await self._queue.ack(entries)
        except Exception:
            log.warning("could not acknowledge applied writes; they will be replayed", exc_info=True)
            return False
        self.applied += len(entries)
        return True

    async def _apply_singly(self, entries: list[tuple[str, Write]]) -> bool:
        for _, w in entries:
            try:
                async with self._db.session() as s, s.begin():
                    await ConversationRepository(s).apply([w])
            except Exception as err:
                if not await self._reachable():
                    return False
                log.error(
                    "conversation write refused by the database; dead-lettered", extra={"error": repr(err)}
                )
                await self._queue.dead_letter(w, repr(err))
                self.dead += 1
        return True

    async def _reachable(self) -> bool:
        try:
            async with asyncio.timeout(5):
                async with self._db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def wait_caught_up(self, seconds: float, conv_id: str | None = None) -> bool:
        """True once the queue is empty — or, with ``conv_id``, holds nothing of that conversation
        (before re-reading a conversation from the database)."""
        deadline = time.monotonic() + seconds
        while True:
            left = await (self._queue.pending_for(conv_id) if conv_id else self._queue.backlog())
            if left == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
