"""``build_identity``: every identity/limits/usage component from Settings, in one place, so the
gateway lifespan wires them with two calls (``await start()`` / ``await stop()``).

Backends follow the configuration: database from ``resolved_database_url`` (SQLite embedded,
Postgres otherwise); rate limits and cross-process cache invalidation on Redis when
``redis_url`` is set, in process otherwise.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime

from nova.config import Settings
from nova.identity.authenticator import Authenticator
from nova.identity.bootstrap import banner, ensure_admin
from nova.identity.invalidation import InvalidationBus
from nova.identity.principal import Principal
from nova.identity.secrets import key_pepper
from nova.identity.service import IdentityService
from nova.identity.store_authenticator import StoreAuthenticator
from nova.identity.tokens import JwtCodec
from nova.limits.admission import Admission
from nova.limits.memory_backend import MemoryAdmission
from nova.limits.redis_backend import RedisAdmission
from nova.store import migrate
from nova.store.db import Database
from nova.store.repos.usage import UsageRepository
from nova.store.usage_writer import BatchedUsageWriter

log = logging.getLogger("nova.identity")


class WithBootstrapKey:
    """``NOVA_ADMIN_API_KEY`` (an operator's break-glass key) in front of the store authenticator;
    one constant-time compare, then the store."""

    def __init__(self, admin_key: str, inner: Authenticator) -> None:
        self._key = admin_key.encode()
        self._inner = inner
        self._principal = Principal(user_id="admin", role="admin", key_id="bootstrap")

    async def authenticate(self, credential: str) -> Principal:
        if hmac.compare_digest(credential.encode(), self._key):
            return self._principal
        return await self._inner.authenticate(credential)


@dataclass
class IdentityComponents:
    settings: Settings
    db: Database
    bus: InvalidationBus
    service: IdentityService
    store_authenticator: StoreAuthenticator
    authenticator: Authenticator
    admission: Admission
    usage: BatchedUsageWriter
    first_admin_key: str | None = field(default=None, init=False)

    async def start(self) -> None:
        """Migrate (when ``auto_migrate``), bootstrap the admin (embedded default), then start the
        background tasks: invalidation listener, last-used flusher, usage writer."""
        s = self.settings
        if s.auto_migrate:
            await migrate.upgrade_async(s)
        if s.bootstrap_admin if s.bootstrap_admin is not None else s.env == "dev":
            self.first_admin_key = await ensure_admin(self.service)
            if self.first_admin_key:
                print(banner(self.first_admin_key, s.bootstrap_admin_username), flush=True)
        await self.bus.start()
        await self.store_authenticator.start()
        await self.usage.start()

    async def stop(self) -> None:
        """Drain usage (spooling what the database refuses), flush last-used, close connections."""
        await self.usage.stop()
        try:
            await self.store_authenticator.stop()
        except Exception:
            log.warning("final api_keys.last_used_at flush failed", exc_info=True)
        await self.bus.stop()
        if isinstance(self.admission, RedisAdmission):
            await self.admission.aclose()
        await self.db.dispose()


def build_identity(settings: Settings, db: Database | None = None) -> IdentityComponents:
    """Construct (no I/O yet); raises ``SecretsError`` at startup when a required secret is missing."""
    db = db or Database(settings)
    pepper = key_pepper(settings)
    jwt = JwtCodec(settings)
    bus = InvalidationBus(settings.redis_url, settings.redis_namespace, settings.redis_socket_timeout)
    service = IdentityService(db, settings, jwt, pepper, bus)
    store_auth = StoreAuthenticator(db, settings, jwt, pepper, bus)
    authenticator: Authenticator = store_auth
    if settings.admin_api_key is not None:
        authenticator = WithBootstrapKey(settings.admin_api_key.get_secret_value(), store_auth)
    backend = settings.limits_backend
    if backend == "auto":
        backend = "redis" if settings.redis_url else "memory"
    admission: Admission

    async def budget_used(key_id: str, since: datetime) -> int:
        async with db.session() as s:
            return await UsageRepository(s).tokens_since(key_id, since)

    if backend == "redis":
        if not settings.redis_url:
            raise ValueError("NOVA_LIMITS_BACKEND=redis needs NOVA_REDIS_URL")
        admission = RedisAdmission.from_settings(settings, budget_used)
    else:
        if settings.workers > 1:
            log.warning("in-process rate limits with %d workers: each counts separately", settings.workers)
        admission = MemoryAdmission(settings, budget_used)
    return IdentityComponents(
        settings=settings,
        db=db,
        bus=bus,
        service=service,
        store_authenticator=store_auth,
        authenticator=authenticator,
        admission=admission,
        usage=BatchedUsageWriter(db, settings),
    )
