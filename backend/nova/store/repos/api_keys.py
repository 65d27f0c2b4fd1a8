"""API keys table access (prefix + keyed hash only)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nova.store.models import ApiKey, User


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def get(self, key_id: str, user_id: str | None = None) -> ApiKey | None:
        """``user_id`` scopes the lookup so another user's key is indistinguishable from none."""
        stmt = select(ApiKey).where(ApiKey.id == key_id)
        if user_id is not None:
            stmt = stmt.where(ApiKey.user_id == user_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_prefix_with_user(self, prefix: str) -> tuple[ApiKey, User] | None:
        row = (
            await self.session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == prefix)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def list(self, user_id: str | None = None, offset: int = 0, limit: int = 100) -> list[ApiKey]:
        stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id).offset(offset).limit(limit)
        if user_id is not None:
            stmt = stmt.where(ApiKey.user_id == user_id)
        return list((await self.session.execute(stmt)).scalars())

    async def update(self, key_id: str, **values: Any) -> None:
        await self.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(**values))

    async def touch_many(self, last_used: Iterable[tuple[str, datetime]]) -> None:
        """Batched ``last_used_at`` update (one executemany), never moving the timestamp back."""
        params = [{"kid": key_id, "ts": ts} for key_id, ts in last_used]
        if not params:
            return
        stmt = (
            update(ApiKey.__table__)  # type: ignore[arg-type]
            .where(ApiKey.__table__.c.id == bindparam("kid"))
            .where(
                (ApiKey.__table__.c.last_used_at.is_(None))
                | (ApiKey.__table__.c.last_used_at < bindparam("ts"))
            )
            .values(last_used_at=bindparam("ts"))
        )
        await self.session.execute(stmt, params)
