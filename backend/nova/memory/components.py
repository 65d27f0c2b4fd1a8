"""``build_memory``: conversations and session memory from Settings, wired with two calls.

Backends follow the configuration like the rest of Nova: with ``redis_url`` (or
``memory_backend=redis``) session windows live in Redis and writes queue in a Redis stream shared
by every gateway replica; otherwise (embedded default) both are in process, the queue being an
append-only journal file in the data directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from nova.config import Settings
from nova.llm.pool import UpstreamPool
from nova.memory.conversations import ConversationService
from nova.memory.flusher import Flusher
from nova.memory.queue import JournalQueue, RedisStreamQueue, WriteQueue
from nova.memory.service import ConversationMemory
from nova.memory.session import LocalSessionStore, RedisSessionStore, SessionStore
from nova.memory.tokens import TokenCounter
from nova.store import migrate
from nova.store.db import Database

log = logging.getLogger("nova.memory")


@dataclass
class MemoryComponents:
    memory: ConversationMemory
    conversations: ConversationService
    flusher: Flusher
    queue: WriteQueue
    store: SessionStore
    settings: Settings
    redis: aioredis.Redis | None = None
    owns_db: bool = False

    async def start(self) -> None:
        """Open the queue (replaying what a previous run left) and start the flusher."""
        await self.queue.start()
        await self.flusher.start()

    async def stop(self) -> None:
        """Store answers still in flight, drain the queue to the database, close connections."""
        await self.memory.drain()
        await self.flusher.stop(self.settings.memory_drain_seconds)
        await self.queue.close()
        await self.store.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.owns_db:
            await self.memory.db.dispose()


def build_memory(
    settings: Settings, db: Database, pool: UpstreamPool | None, redis: aioredis.Redis | None = None
) -> MemoryComponents | None:
    """Construct (no I/O yet). ``redis`` may be shared; otherwise one client is made from settings.

    ``None`` (conversations disabled, logged) with several workers and no Redis: per-process
    session memories would hand out the same sequence numbers for one conversation.
    """
    backend = settings.memory_backend
    if backend == "auto":
        backend = "redis" if settings.redis_url else "memory"
    if backend == "memory" and settings.workers > 1:
        log.error(
            "conversations disabled: %d workers need NOVA_REDIS_URL for shared memory", settings.workers
        )
        return None
    store: SessionStore
    queue: WriteQueue
    own_client: aioredis.Redis | None = None
    if backend == "redis":
        if not settings.redis_url:
            raise ValueError("NOVA_MEMORY_BACKEND=redis needs NOVA_REDIS_URL")
        if redis is None:
            # Request path: Redis trouble must fail fast (503), never hang a request.
            redis = own_client = aioredis.Redis.from_url(
                settings.redis_url, socket_timeout=settings.redis_socket_timeout, health_check_interval=30
            )
        # The flusher's blocking reads get their own connection and a longer timeout.
        reader = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5.0, health_check_interval=30)
        ns = settings.redis_namespace
        store = RedisSessionStore(
            redis,
            ns,
            settings.memory_ttl_seconds,
            settings.memory_window_messages,
            url=settings.redis_url,
            timeout=settings.redis_socket_timeout,
        )
        queue = RedisStreamQueue(redis, ns, reader=reader)
    else:
        store = LocalSessionStore(
            settings.memory_ttl_seconds,
            settings.memory_window_messages,
            settings.memory_local_max_conversations,
        )
        queue = JournalQueue(settings.memory_journal_file or settings.data_dir / "memory-journal.jsonl")
    flusher = Flusher(
        queue,
        db,
        settings.memory_flush_batch,
        settings.memory_flush_max_backoff,
        settings.memory_flush_linger_ms / 1000,
    )
    counter = TokenCounter(pool, settings.memory_tokenize_timeout)
    memory = ConversationMemory(settings, db, store, queue, flusher, counter, pool)
    return MemoryComponents(memory, ConversationService(memory), flusher, queue, store, settings, own_client)


async def open_memory(
    settings: Settings, pool: UpstreamPool, db: Database | None = None
) -> MemoryComponents | None:
    """What the gateway lifespan calls: build and start, or ``None`` when conversations are off.

    ``db``: the identity components' Database when they are wired (they also migrate); otherwise
    memory opens its own and runs the migrations itself (``auto_migrate``).
    """
    if not settings.memory_enabled:
        return None
    owns = db is None
    if db is None:
        if settings.auto_migrate:
            await migrate.upgrade_async(settings)
        db = Database(settings)
    comps = build_memory(settings, db, pool)
    if comps is None:
        if owns:
            await db.dispose()
        return None
    comps.owns_db = owns
    await comps.start()
    return comps
