"""Fixtures for conversation/memory tests: a migrated Postgres schema and SQLite file per session,
a unique Redis namespace, and helpers to run a gateway with memory wired in."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from nova.config import Settings
from nova.store import migrate
from nova.store.db import Database

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def mem_namespace() -> str:
    return f"novamem-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def mem_base(tmp_path_factory: pytest.TempPathFactory, mem_namespace: str) -> dict[str, Any]:
    return {
        "env": "test",
        "data_dir": tmp_path_factory.mktemp("memdata"),
        "secret_key": secrets.token_urlsafe(40),
        "jwt_secret": secrets.token_urlsafe(40),
        "redis_namespace": mem_namespace,
    }


@pytest.fixture(scope="session")
async def mem_pg_schema(services: None) -> AsyncIterator[str]:
    schema = f"nova_mem_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield schema
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@pytest.fixture(scope="session")
async def mem_migrated(
    mem_base: dict[str, Any], mem_pg_schema: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Settings]:
    sqlite_path: Path = tmp_path_factory.mktemp("memsqlite") / "nova.db"
    out = {
        "postgres": Settings(**mem_base, database_url=PG_URL, database_schema=mem_pg_schema),
        "sqlite": Settings(**mem_base, database_url=f"sqlite+aiosqlite:///{sqlite_path}"),
    }
    for s in out.values():
        await migrate.upgrade_async(s)
    return out


@pytest.fixture(params=["postgres", "sqlite"])
def db_settings(request: pytest.FixtureRequest, mem_migrated: dict[str, Settings]) -> Settings:
    return mem_migrated[request.param]


@pytest.fixture
async def db(db_settings: Settings) -> AsyncIterator[Database]:
    database = Database(db_settings)
    yield database
    await database.dispose()


@pytest.fixture
def user() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="session", autouse=True)
def _cleanup_redis(mem_namespace: str) -> Iterator[None]:
    yield
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{mem_namespace}:*"):
        client.delete(key)
    client.close()
