"""``/admin/users``, ``/admin/keys``, ``/admin/usage`` (admin role only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from nova.api.auth import IdentityDep, SmallBody
from nova.api.deps import AdminDep
from nova.api.identity_models import KeyCreate, key_out, parse_group_by, usage_out, user_out, utc

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=SmallBody)


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str | None = Field(default=None, max_length=1024)
    role: Literal["admin", "user"] = "user"
    requests_per_minute: int | None = Field(default=None, ge=0)


class UserPatch(BaseModel):
    role: Literal["admin", "user"] | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, max_length=1024)
    requests_per_minute: int | None = Field(default=None, ge=0)


class AdminKeyCreate(KeyCreate):
    user_id: str = Field(min_length=1, max_length=64)


@router.get("/users")
async def list_users(
    _: AdminDep, identity: IdentityDep, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)
) -> dict[str, Any]:
    return {"object": "list", "data": [user_out(u) for u in await identity.list_users(offset, limit)]}


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, _: AdminDep, identity: IdentityDep) -> dict[str, Any]:
    return user_out(
        await identity.create_user(body.username, body.password, body.role, body.requests_per_minute)
    )


@router.get("/users/{user_id}")
async def get_user(user_id: str, _: AdminDep, identity: IdentityDep) -> dict[str, Any]:
    return user_out(await identity.get_user(user_id))


@router.patch("/users/{user_id}")
async def update_user(user_id: str, body: UserPatch, _: AdminDep, identity: IdentityDep) -> dict[str, Any]:
    """Disabling a user stops their keys and tokens in every process at once. A password change
    revokes their refresh and access tokens (not their API keys)."""
    extra: dict[str, Any] = {}
    if "requests_per_minute" in body.model_fields_set:  # explicit null clears the limit
        extra["requests_per_minute"] = body.requests_per_minute
    view = await identity.update_user(
        user_id, role=body.role, disabled=body.disabled, password=body.password, **extra
    )
    return user_out(view)


@router.get("/keys")
async def list_keys(
    _: AdminDep,
    identity: IdentityDep,
    user_id: str | None = Query(None, max_length=64),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    return {"object": "list", "data": [key_out(k) for k in await identity.list_keys(user_id, offset, limit)]}


@router.post("/keys", status_code=201)
async def create_key(body: AdminKeyCreate, _: AdminDep, identity: IdentityDep) -> dict[str, Any]:
    view, plaintext = await identity.create_key(body.user_id, body.spec())
    return key_out(view, plaintext)


@router.get("/keys/{key_id}")
async def get_key(key_id: str, _: AdminDep, identity: IdentityDep) -> dict[str, Any]:
    return key_out(await identity.get_key(key_id))


@router.patch("/keys/{key_id}")
async def update_key(key_id: str, body: KeyCreate, _: AdminDep, identity: IdentityDep) -> dict[str, Any]:
    """Merge-patch: fields left out keep their value, an explicit ``null`` clears a limit or an
    expiry. Effective in every process at once."""
    current = await identity.get_key(key_id)
    given = body.model_fields_set
    merged = KeyCreate(
        name=body.name if "name" in given else current.name,
        expires_at=current.expires_at
        if given.isdisjoint({"expires_at", "expires_in_days"})
        else body.expires_at,
        expires_in_days=body.expires_in_days,
        **{
            field: getattr(body if field in given else current, field)
            for field in (
                "allowed_models",
                "requests_per_minute",
                "tokens_per_minute",
                "max_concurrent",
                "monthly_token_budget",
            )
        },
    )
    return key_out(await identity.update_key(key_id, merged.spec()))


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, _: AdminDep, identity: IdentityDep) -> dict[str, Any]:
    return key_out(await identity.revoke_key(key_id))


@router.get("/usage")
async def usage(
    _: AdminDep,
    identity: IdentityDep,
    group_by: str = Query("user,model,day", max_length=64),
    start: datetime | None = None,
    end: datetime | None = None,
    user_id: str | None = Query(None, max_length=64),
    key_id: str | None = Query(None, max_length=64),
    model: str | None = Query(None, max_length=128),
) -> dict[str, Any]:
    groups = parse_group_by(group_by, ("key", "user", "model", "day"))
    start, end = utc(start), utc(end)
    rows = await identity.usage(groups, start=start, end=end, user_id=user_id, key_id=key_id, model=model)
    return usage_out(rows, start, end)
