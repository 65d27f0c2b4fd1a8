"""Store contract: the same tests on Postgres and SQLite (``settings`` is parametrized)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from nova.config import Settings
from nova.store import migrate
from nova.store.base import Base
from nova.store.db import Database
from nova.store.models import ApiKey
from nova.store.repos.api_keys import ApiKeyRepository
from nova.store.repos.usage import UsageRepository
from nova.store.repos.users import UserRepository
from nova.store.usage import UsageEvent


async def test_migrated_to_head_and_models_match(settings: Settings, db: Database) -> None:
    assert await migrate.current(settings) == migrate.head_revision()
    migrate.load_all_models()
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    # Only the alembic bookkeeping table may differ from the models.
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")] == []


async def test_downgrade_and_upgrade_roundtrip(
    base_settings: dict[str, object],
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    pg_dsn: str,
) -> None:
    if settings.database_schema:
        schema = f"nova_test_rt_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(pg_dsn)
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        fresh = Settings(**base_settings, database_url=settings.database_url, database_schema=schema)  # type: ignore[arg-type]
    else:
        path = tmp_path_factory.mktemp("rt") / "rt.db"
        fresh = Settings(**base_settings, database_url=f"sqlite+aiosqlite:///{path}")  # type: ignore[arg-type]
    try:
        await migrate.upgrade_async(fresh)
        assert await migrate.current(fresh) == migrate.head_revision()
        await asyncio.to_thread(migrate.downgrade, fresh, "base")
        assert await migrate.current(fresh) is None
        await migrate.upgrade_async(fresh, "0001_identity")  # identity alone, then the rest on top
        assert await migrate.current(fresh) == "0001_identity"
        await migrate.upgrade_async(fresh)
        assert await migrate.current(fresh) == migrate.head_revision()
    finally:
        if settings.database_schema:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()


async def test_users_unique_and_timestamps_are_utc(db: Database, unique: Callable[[str], str]) -> None:
    name = unique("alice")
    async with db.session() as s, s.begin():
        user = await UserRepository(s).add(name, "hash", "user")
    async with db.session() as s:
        loaded = await UserRepository(s).by_username(name)
    assert loaded is not None and loaded.id == user.id
    assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - loaded.created_at).total_seconds()) < 60
    with pytest.raises(IntegrityError):
        async with db.session() as s, s.begin():
            await UserRepository(s).add(name, "other", "user")


async def test_record_failure_locks_after_threshold(db: Database, unique: Callable[[str], str]) -> None:
    async with db.session() as s, s.begin():
        user = await UserRepository(s).add(unique("bob"), "hash")
    until = datetime.now(UTC) + timedelta(minutes=5)
    counts = []
    for _ in range(3):
        async with db.session() as s, s.begin():
            counts.append(await UserRepository(s).record_failure(user.id, 3, until))
    assert counts == [1, 2, 3]
    async with db.session() as s:
        loaded = await UserRepository(s).get(user.id)
    assert loaded is not None and loaded.failed_logins == 0
    assert loaded.locked_until is not None and abs((loaded.locked_until - until).total_seconds()) < 1


async def test_api_keys_lookup_scoping_and_batched_touch(db: Database, unique: Callable[[str], str]) -> None:
    async with db.session() as s, s.begin():
        users = UserRepository(s)
        a = await users.add(unique("a"), None)
        b = await users.add(unique("b"), None)
        ka = await ApiKeyRepository(s).add(
            ApiKey(user_id=a.id, prefix=uuid.uuid4().hex[:10], key_hash="x" * 64, allowed_models=["m1"])
        )
        kb = await ApiKeyRepository(s).add(
            ApiKey(user_id=b.id, prefix=uuid.uuid4().hex[:10], key_hash="y" * 64)
        )
    async with db.session() as s:
        repo = ApiKeyRepository(s)
        assert (await repo.get(ka.id, a.id)) is not None
        assert (await repo.get(ka.id, b.id)) is None  # another user's key looks missing
        assert [k.id for k in await repo.list(a.id)] == [ka.id]
        found = await repo.by_prefix_with_user(ka.prefix)
        assert found is not None and found[1].id == a.id and found[0].allowed_models == ["m1"]
    t1 = datetime.now(UTC).replace(microsecond=0)
    t0 = t1 - timedelta(hours=1)
    async with db.session() as s, s.begin():
        await ApiKeyRepository(s).touch_many([(ka.id, t1), (kb.id, t0)])
    async with db.session() as s, s.begin():
        await ApiKeyRepository(s).touch_many([(ka.id, t0)])  # older: must not move back
    async with db.session() as s:
        ka2 = await ApiKeyRepository(s).get(ka.id)
        kb2 = await ApiKeyRepository(s).get(kb.id)
    assert ka2 is not None and ka2.last_used_at == t1
    assert kb2 is not None and kb2.last_used_at == t0


async def test_usage_insert_and_aggregates(db: Database, unique: Callable[[str], str]) -> None:
    user, other = unique("u"), unique("o")
    day1 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    day2 = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    events = [
        UsageEvent("r1", user, "k1", "m1", "/v1/chat/completions", 200, 10, 5, 100.0, 20.0, day1),
        UsageEvent("r2", user, "k1", "m2", "/v1/chat/completions", 200, 7, 3, 50.0, None, day2),
        UsageEvent("r3", user, "k2", "m1", "/v1/chat/completions", 500, 4, 0, 10.0, None, day2),
        UsageEvent("r4", other, "k3", "m1", "/v1/chat/completions", 200, 1000, 1000, 1.0, None, day2),
    ]
    async with db.session() as s, s.begin():
        await UsageRepository(s).insert_many(events)
    async with db.session() as s:
        repo = UsageRepository(s)
        by_model = await repo.aggregate(["model"], user_id=user)
        by_day = await repo.aggregate(["day"], user_id=user)
        by_key_day = await repo.aggregate(["key", "day"], user_id=user)
        total = await repo.aggregate([], user_id=user)
        window = await repo.aggregate(["user"], start=day2, end=day2 + timedelta(hours=1))
    assert [(a.group["model"], a.requests, a.prompt_tokens, a.completion_tokens) for a in by_model] == [
        ("m1", 2, 14, 5),
        ("m2", 1, 7, 3),
    ]
    assert [(a.group["day"], a.requests) for a in by_day] == [("2026-03-01", 1), ("2026-03-02", 2)]
    assert [(a.group["key"], a.group["day"], a.requests) for a in by_key_day] == [
        ("k1", "2026-03-01", 1),
        ("k1", "2026-03-02", 1),
        ("k2", "2026-03-02", 1),
    ]
    assert len(total) == 1 and total[0].requests == 3 and total[0].errors == 1
    assert {a.group["user"]: a.requests for a in window if a.group["user"] in (user, other)} == {
        user: 2,
        other: 1,
    }
