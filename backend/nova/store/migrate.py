"""Run Alembic migrations from code (app start, ``nova migrate``) with Settings as the source of
the database URL, so no alembic.ini edits are needed when Nova is installed."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from nova.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def load_all_models() -> None:
    """Import every module of ``nova.store`` so each table other domains declare on ``Base`` is in
    the metadata Alembic compares against (autogenerate, model/migration consistency test)."""
    import importlib
    import pkgutil

    import nova.store

    for mod in pkgutil.walk_packages(nova.store.__path__, "nova.store."):
        if ".migrations" not in mod.name:
            importlib.import_module(mod.name)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def alembic_config(settings: Settings) -> Config:
    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Blocking; call from sync code or through ``upgrade_async`` inside an event loop.

    Several processes may start at once (``NOVA_WORKERS`` > 1, replicas): on Postgres env.py holds
    an advisory lock; on SQLite a file lock next to the database serializes them."""
    with _sqlite_lock(settings):
        command.upgrade(alembic_config(settings), revision)


@contextlib.contextmanager
def _sqlite_lock(settings: Settings) -> Iterator[None]:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    lock_path = Path(url.database).with_suffix(".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


async def upgrade_async(settings: Settings, revision: str = "head") -> None:
    # env.py runs its own event loop, so it must live on a thread without one.
    await asyncio.to_thread(upgrade, settings, revision)


async def current(settings: Settings) -> str | None:
    """Revision the database is at (``None`` when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    from nova.store.db import create_engine

    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    finally:
        await engine.dispose()
