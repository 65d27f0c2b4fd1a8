"""``GET /v1/usage``: the caller's own usage, grouped by key, model and/or day."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from nova.api.auth import IdentityDep
from nova.api.deps import PrincipalDep
from nova.api.identity_models import parse_group_by, usage_out, utc

router = APIRouter(prefix="/v1", tags=["usage"])


@router.get("/usage")
async def my_usage(
    principal: PrincipalDep,
    identity: IdentityDep,
    group_by: str = Query("model,day", max_length=64),
    start: datetime | None = None,
    end: datetime | None = None,
    key_id: str | None = Query(None, max_length=64),
    model: str | None = Query(None, max_length=128),
) -> dict[str, Any]:
    groups = parse_group_by(group_by, ("key", "model", "day"))
    if key_id is not None:
        await identity.get_key(key_id, owner_id=principal.user_id)  # 404 unless it is the caller's
    start, end = utc(start), utc(end)
    rows = await identity.usage(
        groups, start=start, end=end, user_id=principal.user_id, key_id=key_id, model=model
    )
    return usage_out(rows, start, end)
