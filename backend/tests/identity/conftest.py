"""Fixtures for identity/limits/usage tests: real Postgres (fresh schema per session), SQLite in a
temp dir, real Redis (unique key namespace per session)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from nova.config import Settings
from nova.identity.invalidation import InvalidationBus
from nova.identity.secrets import key_pepper
from nova.identity.service import IdentityService
from nova.identity.store_authenticator import StoreAuthenticator
from nova.identity.tokens import JwtCodec
from nova.store import migrate
from nova.store.db import Database

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    return PG_DSN


@pytest.fixture(scope="session")
def redis_url(services: None) -> str:
    """Overrides the root fixture of the same name (same URL); ``services`` starts Redis/Postgres."""
    return REDIS_URL


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"novatest-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory, namespace: str) -> dict[str, Any]:
    return {
        "env": "test",
        "data_dir": tmp_path_factory.mktemp("data"),
        "secret_key": secrets.token_urlsafe(40),
        "jwt_secret": secrets.token_urlsafe(40),
        "redis_namespace": namespace,
        "login_failure_delay_seconds": 0.0,
        "key_cache_ttl_seconds": 300.0,
    }


@pytest.fixture(scope="session")
async def pg_schema(services: None) -> AsyncIterator[str]:
    schema = f"nova_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield schema
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@pytest.fixture(scope="session")
async def migrated(
    base_settings: dict[str, Any], pg_schema: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Settings]:
    """One migrated database per backend for the whole session."""
    sqlite_path: Path = tmp_path_factory.mktemp("sqlite") / "nova.db"
    out = {
        "postgres": Settings(**base_settings, database_url=PG_URL, database_schema=pg_schema),
        "sqlite": Settings(**base_settings, database_url=f"sqlite+aiosqlite:///{sqlite_path}"),
    }
    for s in out.values():
        await migrate.upgrade_async(s)
    return out


@pytest.fixture(params=["postgres", "sqlite"])
def settings(request: pytest.FixtureRequest, migrated: dict[str, Settings]) -> Settings:
    return migrated[request.param]


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture
def bus() -> InvalidationBus:
    return InvalidationBus(None, "unused")


@pytest.fixture
def service(db: Database, settings: Settings, bus: InvalidationBus) -> IdentityService:
    return IdentityService(db, settings, JwtCodec(settings), key_pepper(settings), bus)


@pytest.fixture
def authenticator(db: Database, settings: Settings, bus: InvalidationBus) -> StoreAuthenticator:
    return StoreAuthenticator(db, settings, JwtCodec(settings), key_pepper(settings), bus)


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda base: f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=1.0)
    yield client
    await client.aclose()


@pytest.fixture(scope="session", autouse=True)
def _cleanup_redis(namespace: str, services: None) -> Iterator[None]:
    yield
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{namespace}:*"):
        client.delete(key)
    client.close()
