"""Users table access."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nova.store.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        username: str,
        password_hash: str | None,
        role: str = "user",
        requests_per_minute: int | None = None,
    ) -> User:
        user = User(
            username=username,
            password_hash=password_hash,
            role=role,
            disabled=False,
            failed_logins=0,
            requests_per_minute=requests_per_minute,
        )
        self.session.add(user)
        await self.session.flush()
        return user

    async def get(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def by_username(self, username: str) -> User | None:
        return (
            await self.session.execute(select(User).where(User.username == username))
        ).scalar_one_or_none()

    async def list(self, offset: int = 0, limit: int = 100) -> list[User]:
        rows = await self.session.execute(
            select(User).order_by(User.created_at, User.id).offset(offset).limit(limit)
        )
        return list(rows.scalars())

    async def count(self, role: str | None = None) -> int:
        stmt = select(func.count()).select_from(User)
        if role is not None:
            stmt = stmt.where(User.role == role)
        return int((await self.session.execute(stmt)).scalar_one())

    async def update(self, user_id: str, **values: Any) -> None:
        await self.session.execute(update(User).where(User.id == user_id).values(**values))

    async def record_failure(self, user_id: str, lock_after: int, locked_until: datetime) -> int:
        """Atomically count a failed login; lock the account once the count reaches ``lock_after``.
        Returns the new failure count."""
        result = await self.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins)
        )
        count = int(result.scalar_one())
        if count >= lock_after:
            await self.session.execute(
                update(User).where(User.id == user_id).values(locked_until=locked_until, failed_logins=0)
            )
        return count
