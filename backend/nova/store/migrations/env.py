"""Alembic environment: async engine from nova Settings; batch mode so ALTERs work on SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from nova.config import Settings
from nova.store.base import Base
from nova.store.db import create_engine
from nova.store.migrate import load_all_models

load_all_models()  # every table declared on Base, whichever domain module declares it
config = context.config
settings: Settings = config.attributes.get("settings") or Settings()
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Several gateway replicas may start at once: on Postgres one migrates while the others wait.
_LOCK_ID = 0x6E6F7661  # "nova"


async def _run_async() -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                await connection.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_ID})")
            try:
                await connection.run_sync(_run)
                await connection.commit()
            finally:
                if postgres:
                    await connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_ID})")
                    await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=settings.resolved_database_url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
