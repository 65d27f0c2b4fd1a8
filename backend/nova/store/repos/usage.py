"""Usage events: batched inserts and aggregates (by key, user, model, day)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from nova.store.models import UsageRecord
from nova.store.usage import UsageEvent

GroupBy = Literal["key", "user", "model", "day"]
_FIELDS = tuple(f.name for f in fields(UsageEvent))
_COLUMNS = {"key": UsageRecord.key_id, "user": UsageRecord.user_id, "model": UsageRecord.model}


@dataclass(frozen=True, slots=True)
class UsageAggregate:
    group: dict[str, str | None]
    requests: int
    prompt_tokens: int
    completion_tokens: int
    errors: int
    avg_latency_ms: float


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, events: Sequence[UsageEvent]) -> None:
        if events:
            # Core insert of plain dicts: the ORM bulk path and ``asdict`` (a deep copy) cost more
            # than the write itself, on the gateway's only core.
            rows = [{f: getattr(e, f) for f in _FIELDS} for e in events]
            await self.session.execute(insert(cast(Table, UsageRecord.__table__)), rows)

    async def aggregate(
        self,
        group_by: Sequence[GroupBy],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        user_id: str | None = None,
        key_id: str | None = None,
        model: str | None = None,
        limit: int = 1000,
    ) -> list[UsageAggregate]:
        dialect = self.session.bind.dialect.name if self.session.bind else "postgresql"
        cols: list[Any] = []
        for g in group_by:
            if g == "day":
                day = (
                    func.strftime("%Y-%m-%d", UsageRecord.created_at)
                    if dialect == "sqlite"
                    else func.to_char(func.timezone("UTC", UsageRecord.created_at), "YYYY-MM-DD")
                )
                cols.append(day.label("day"))
            else:
                cols.append(_COLUMNS[g].label(g))
        stmt = select(
            *cols,
            func.count().label("requests"),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(case((UsageRecord.status >= 400, 1), else_=0)), 0).label("errors"),
            func.coalesce(func.avg(UsageRecord.latency_ms), 0.0).label("avg_latency_ms"),
        )
        if start is not None:
            stmt = stmt.where(UsageRecord.created_at >= start)
        if end is not None:
            stmt = stmt.where(UsageRecord.created_at < end)
        if user_id is not None:
            stmt = stmt.where(UsageRecord.user_id == user_id)
        if key_id is not None:
            stmt = stmt.where(UsageRecord.key_id == key_id)
        if model is not None:
            stmt = stmt.where(UsageRecord.model == model)
        if cols:
            stmt = stmt.group_by(*cols).order_by(*cols)
        rows = (await self.session.execute(stmt.limit(limit))).all()
        out = []
        for row in rows:
            m = row._mapping
            out.append(
                UsageAggregate(
                    group={g: m[g] for g in group_by},
                    requests=int(m["requests"]),
                    prompt_tokens=int(m["prompt_tokens"]),
                    completion_tokens=int(m["completion_tokens"]),
                    errors=int(m["errors"]),
                    avg_latency_ms=round(float(m["avg_latency_ms"]), 3),
                )
            )
        return out

    async def tokens_since(self, key_id: str, since: datetime) -> int:
        stmt = select(
            func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)
        ).where(UsageRecord.key_id == key_id, UsageRecord.created_at >= since)
        return int((await self.session.execute(stmt)).scalar_one())
