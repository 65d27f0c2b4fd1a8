"""Store probes for ``/health/ready``: the stores this gateway cannot serve without.

The database is always needed (credentials not yet cached, usage, conversations). Redis is a
dependency only when rate limiting fails closed: failing open, a Redis outage degrades limits
(metric + log) but every request is still served, and marking every replica unready for it would
turn a degraded platform into an outage. The rag service is not needed for chat and is not probed.
Each probe is bounded by ``NOVA_READINESS_TIMEOUT`` so a hung store answers "not ready", not a hung
probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from sqlalchemy import text

from nova.config import Settings
from nova.store.db import Database

log = logging.getLogger("nova.readiness")

Probe = Callable[[], Awaitable[bool]]


def _bounded(name: str, check: Callable[[], Awaitable[object]], timeout: float) -> Probe:
    async def probe() -> bool:
        try:
            await asyncio.wait_for(check(), timeout)
        except Exception as exc:  # any failure of the store is "not ready"; say which
            log.warning("readiness: %s unavailable (%s)", name, exc.__class__.__name__)
            return False
        return True

    return probe


def store_probes(settings: Settings, db: Database) -> tuple[dict[str, Probe], Callable[[], Awaitable[None]]]:
    """``(probes by name, close)``; ``close`` releases the probes' own connections."""

    async def select_one() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    probes: dict[str, Probe] = {"database": _bounded("database", select_one, settings.readiness_timeout)}
    client: aioredis.Redis | None = None
    if settings.redis_url and settings.limits_fail_mode == "closed":
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.readiness_timeout,
            socket_connect_timeout=settings.readiness_timeout,
        )
        probes["redis"] = _bounded("redis", client.ping, settings.readiness_timeout)

    async def close() -> None:
        if client is not None:
            await client.aclose()

    return probes, close
