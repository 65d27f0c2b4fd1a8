"""Cross-process cache invalidation over Redis pub/sub.

Revoking a key, disabling a user or logging out publishes one message; every gateway process
subscribed drops the matching cache entries at once, so a revoked key stops working everywhere
within the pub/sub latency (milliseconds) instead of the cache TTL. When the subscription drops,
the listener clears every cache on reconnect because messages may have been missed.

Logged-out access tokens (``jti``) are also kept in a Redis sorted set scored by their expiry, and
replayed to the handlers on every (re)subscription: a gateway that starts, restarts or lost its
subscription after a logout still refuses that token until it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("nova.identity.invalidation")

Kind = Literal["key", "user", "jti", "all"]
Handler = Callable[[Kind, str], None]


class InvalidationBus:
    """Local fan-out always; Redis fan-out to other processes when a URL is configured."""

    def __init__(self, redis_url: str | None, namespace: str, socket_timeout: float = 0.25) -> None:
        self.channel = f"{namespace}:identity:invalidate"
        self.revoked_jti_key = f"{namespace}:identity:revoked-jti"
        self._origin = secrets.token_hex(6)
        self.client_name = f"{namespace}-invalidation-{self._origin}"
        self._handlers: list[Handler] = []
        self._url = redis_url
        self._timeout = socket_timeout
        self._pub: aioredis.Redis | None = (
            aioredis.Redis.from_url(
                redis_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
            if redis_url
            else None
        )
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, kind: Kind, ident: str) -> None:
        self._dispatch(kind, ident)
        if self._pub is None:
            return
        try:
            if kind == "jti":
                await self._remember_jti(self._pub, ident)
            await self._pub.publish(self.channel, f"{self._origin}|{kind}|{ident}")
        except (RedisError, OSError):
            log.warning("could not publish %s invalidation; other processes rely on the cache TTL", kind)

    async def _remember_jti(self, client: aioredis.Redis, ident: str) -> None:
        jti, _, exp = ident.partition(":")
        now = time.time()
        async with client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.revoked_jti_key, {jti: float(exp or now)})
            pipe.zremrangebyscore(self.revoked_jti_key, "-inf", now)
            pipe.expireat(self.revoked_jti_key, int(max(float(exp or now), now)) + 60)
            await pipe.execute()

    async def _replay_revoked_jti(self, client: aioredis.Redis) -> None:
        entries: list[tuple[bytes, float]] = await client.zrangebyscore(  # type: ignore[assignment]
            self.revoked_jti_key, time.time(), "+inf", withscores=True
        )
        for jti, exp in entries:
            self._dispatch("jti", f"{jti.decode()}:{exp}")

    def _dispatch(self, kind: Kind, ident: str) -> None:
        for handler in self._handlers:
            handler(kind, ident)

    async def start(self) -> None:
        if self._url and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="nova-identity-invalidation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pub is not None:
            await self._pub.aclose()

    async def _listen(self) -> None:
        assert self._url is not None
        backoff = 0.1
        while True:
            client = aioredis.Redis.from_url(
                self._url,
                socket_connect_timeout=max(self._timeout, 1.0),
                health_check_interval=5,
                client_name=self.client_name,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Anything published while we were not listening is lost: start from empty caches,
                # then take back the logouts that are still in force.
                self._dispatch("all", "")
                await self._replay_revoked_jti(client)
                self.subscribed.set()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("invalidation subscription lost (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _handle(self, data: bytes) -> None:
        try:
            origin, kind, ident = data.decode().split("|", 2)
        except ValueError:
            return
        if origin == self._origin or kind not in ("key", "user", "jti", "all"):
            return
        self._dispatch(kind, ident)  # type: ignore[arg-type]
