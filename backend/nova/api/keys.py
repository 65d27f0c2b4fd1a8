"""``/v1/keys``: a user's own API keys. Another user's key is indistinguishable from a missing
one (404), so ids do not leak."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from nova.api.auth import IdentityDep, SmallBody
from nova.api.deps import PrincipalDep
from nova.api.identity_models import KeyCreate, key_out

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=SmallBody)


@router.get("")
async def list_keys(
    principal: PrincipalDep,
    identity: IdentityDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    keys = await identity.list_keys(principal.user_id, offset, limit)
    return {"object": "list", "data": [key_out(k) for k in keys]}


@router.post("", status_code=201)
async def create_key(body: KeyCreate, principal: PrincipalDep, identity: IdentityDep) -> dict[str, Any]:
    """Limits default to the server's and may only be tightened here (admins use /admin/keys)."""
    view, plaintext = await identity.create_key(principal.user_id, body.spec(), self_service=True)
    return key_out(view, plaintext)


@router.get("/{key_id}")
async def get_key(key_id: str, principal: PrincipalDep, identity: IdentityDep) -> dict[str, Any]:
    return key_out(await identity.get_key(key_id, owner_id=principal.user_id))


@router.delete("/{key_id}")
async def revoke_key(key_id: str, principal: PrincipalDep, identity: IdentityDep) -> dict[str, Any]:
    """Revoked at once in every gateway process."""
    return key_out(await identity.revoke_key(key_id, owner_id=principal.user_id))
