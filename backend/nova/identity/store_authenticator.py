"""The production ``Authenticator``: API keys and JWT access tokens backed by the identity store.

Hot path (cache hit): regex check, one HMAC-SHA256 and a dict lookup; no I/O. Verified keys and
user records are cached in process for ``key_cache_ttl_seconds`` and dropped immediately when an
``InvalidationBus`` message (revoke, user change) arrives from any process. A generation counter
stops a load that raced with an invalidation from re-inserting the stale entry. ``last_used_at``
is collected in a dict and written in one batched UPDATE every ``key_last_used_flush_seconds``.
Failures are counted in ``nova_auth_failures_total`` by the HTTP dependency that calls us.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from nova.config import Settings
from nova.errors import ServiceUnavailable, Unauthorized
from nova.identity import api_keys
from nova.identity.invalidation import InvalidationBus, Kind
from nova.identity.principal import KeyLimits, Principal
from nova.identity.tokens import JwtCodec
from nova.store.db import Database
from nova.store.repos.api_keys import ApiKeyRepository
from nova.store.repos.users import UserRepository

log = logging.getLogger("nova.identity.auth")
_MAX_ENTRIES = 100_000
_INVALID_KEY = "Incorrect API key provided."


@dataclass(slots=True)
class _KeyEntry:
    principal: Principal
    key_id: str
    user_id: str
    fresh_until: float  # wall clock
    expires_at: float | None  # the key's own expiry (wall clock)


@dataclass(slots=True)
class _UserEntry:
    principal: Principal
    fresh_until: float
    token_version: int = 0


_Entry = TypeVar("_Entry", _KeyEntry, _UserEntry)


class StoreAuthenticator:
    def __init__(
        self, db: Database, settings: Settings, jwt: JwtCodec, pepper: bytes, bus: InvalidationBus
    ) -> None:
        self._db = db
        self._jwt = jwt
        self._pepper = pepper
        self._ttl = settings.key_cache_ttl_seconds
        self._flush_every = settings.key_last_used_flush_seconds
        self._default_user_rpm = settings.default_user_rpm
        self._keys: dict[bytes, _KeyEntry] = {}
        self._digest_by_key: dict[str, bytes] = {}
        self._users: dict[str, _UserEntry] = {}
        self._revoked_jti: dict[str, float] = {}
        self._generation = 0
        self._last_used: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._loading: dict[Any, asyncio.Future[Any]] = {}
        self.db_lookups = 0  # observable in tests: cache hits must not touch the database
        bus.subscribe(self._invalidate)

    # -- Authenticator protocol -----------------------------------------------------------------
    async def authenticate(self, credential: str) -> Principal:
        if credential.startswith("nova-"):
            return await self._by_key(credential)
        if credential.count(".") == 2:
            return await self._by_jwt(credential)
        raise Unauthorized(_INVALID_KEY)

    async def _by_key(self, credential: str) -> Principal:
        prefix = api_keys.parse_prefix(credential)
        if prefix is None:
            raise Unauthorized(_INVALID_KEY)
        digest = api_keys.digest(self._pepper, credential)
        now = time.time()
        entry = self._keys.get(digest)
        if entry is None or entry.fresh_until <= now:
            entry = await self._refresh(digest, entry, lambda: self._load_key(prefix, digest, now))
        if entry.expires_at is not None and entry.expires_at <= now:
            raise Unauthorized("API key expired.", code="expired_api_key")
        self._last_used[entry.key_id] = now
        return entry.principal

    async def _load_key(self, prefix: str, digest: bytes, now: float) -> _KeyEntry:
        generation = self._generation
        self.db_lookups += 1
        async with self._db.session() as s:
            found = await ApiKeyRepository(s).by_prefix_with_user(prefix)
        if found is None or not hmac.compare_digest(found[0].key_hash, digest.hex()):
            raise Unauthorized(_INVALID_KEY)
        key, user = found
        if key.revoked_at is not None or user.disabled:
            raise Unauthorized("API key revoked.", code="revoked_api_key")
        principal = Principal(
            user_id=user.id,
            role="admin" if user.role == "admin" else "user",
            key_id=key.id,
            allowed_models=frozenset(key.allowed_models) if key.allowed_models is not None else None,
            limits=KeyLimits(
                requests_per_minute=key.requests_per_minute,
                tokens_per_minute=key.tokens_per_minute,
                max_concurrent=key.max_concurrent,
                monthly_token_budget=key.monthly_token_budget,
            ),
            user_requests_per_minute=(
                user.requests_per_minute if user.requests_per_minute is not None else self._default_user_rpm
            ),
        )
        entry = _KeyEntry(
            principal=principal,
            key_id=key.id,
            user_id=user.id,
            fresh_until=now + self._ttl,
            expires_at=key.expires_at.timestamp() if key.expires_at else None,
        )
        if generation == self._generation:  # no invalidation raced with this load
            if len(self._keys) >= _MAX_ENTRIES:
                self._evict(self._keys, _MAX_ENTRIES // 10)
            self._keys[digest] = entry
            self._digest_by_key[key.id] = digest
        return entry

    async def _by_jwt(self, token: str) -> Principal:
        claims = self._jwt.verify(token)
        if claims.jti in self._revoked_jti:
            raise Unauthorized("Token revoked.", code="invalid_token")
        now = time.time()
        entry = self._users.get(claims.user_id)
        if entry is None or entry.fresh_until <= now:
            entry = await self._refresh(claims.user_id, entry, lambda: self._load_user(claims.user_id, now))
        if claims.version != entry.token_version:  # issued before a password change
            raise Unauthorized("Token revoked.", code="invalid_token")
        return entry.principal

    async def _refresh(
        self, ident: Any, stale: _Entry | None, load: Callable[[], Awaitable[_Entry]]
    ) -> _Entry:
        """Load once per identity however many requests miss at the same moment (single flight).
        When the database is unreachable, a stale entry keeps serving (revocations still arrive
        over pub/sub) and a caller never seen before gets 503, not a hang or a 500."""
        task = self._loading.get(ident)
        if task is None:
            task = asyncio.ensure_future(load())
            self._loading[ident] = task
            task.add_done_callback(lambda _t: self._loading.pop(ident, None))
        try:
            return await asyncio.shield(task)
        except Unauthorized:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if stale is not None:
                stale.fresh_until = time.time() + min(self._ttl, 5.0)
                log.warning("identity store unreachable (%s); serving a cached credential", exc)
                return stale
            log.warning("identity store unreachable (%s)", exc)
            raise ServiceUnavailable(
                "Authentication is temporarily unavailable.", headers={"Retry-After": "1"}
            ) from None

    async def _load_user(self, user_id: str, now: float) -> _UserEntry:
        generation = self._generation
        self.db_lookups += 1
        async with self._db.session() as s:
            user = await UserRepository(s).get(user_id)
        if user is None or user.disabled:
            raise Unauthorized("User disabled or unknown.", code="invalid_token")
        principal = Principal(
            user_id=user.id,
            role="admin" if user.role == "admin" else "user",
            user_requests_per_minute=(
                user.requests_per_minute if user.requests_per_minute is not None else self._default_user_rpm
            ),
        )
        entry = _UserEntry(principal, now + self._ttl, user.token_version)
        if generation == self._generation:
            if len(self._users) >= _MAX_ENTRIES:
                self._evict(self._users, _MAX_ENTRIES // 10)
            self._users[user_id] = entry
        return entry

    # -- invalidation ---------------------------------------------------------------------------
    def _invalidate(self, kind: Kind, ident: str) -> None:
        self._generation += 1
        if kind == "key":
            digest = self._digest_by_key.pop(ident, None)
            if digest is not None:
                self._keys.pop(digest, None)
        elif kind == "user":
            self._users.pop(ident, None)
            for digest, entry in list(self._keys.items()):
                if entry.user_id == ident:
                    del self._keys[digest]
                    self._digest_by_key.pop(entry.key_id, None)
        elif kind == "jti":
            jti, _, exp = ident.partition(":")
            self._revoked_jti[jti] = float(exp or 0)
            now = time.time()
            if len(self._revoked_jti) > 1000:
                self._revoked_jti = {j: e for j, e in self._revoked_jti.items() if e > now}
        elif kind == "all":
            self._keys.clear()
            self._digest_by_key.clear()
            self._users.clear()

    @staticmethod
    def _evict(cache: dict[Any, Any], count: int) -> None:
        for k in list(cache)[:count]:
            del cache[k]

    # -- last_used_at batching ------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flush_loop(), name="nova-key-last-used")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush_last_used()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            try:
                await self.flush_last_used()
            except Exception:
                log.warning("could not write api_keys.last_used_at; will retry", exc_info=True)

    async def flush_last_used(self) -> None:
        if not self._last_used:
            return
        pending, self._last_used = self._last_used, {}
        try:
            async with self._db.session() as s, s.begin():
                await ApiKeyRepository(s).touch_many(
                    (key_id, datetime.fromtimestamp(ts, UTC)) for key_id, ts in pending.items()
                )
        except Exception:
            for key_id, ts in pending.items():  # keep the newest timestamp for the next attempt
                self._last_used[key_id] = max(ts, self._last_used.get(key_id, 0.0))
            raise
