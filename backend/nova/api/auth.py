"""``/v1/auth``: login, refresh, logout, sign-up (when enabled) and who-am-I. Thin: the identity
service does the work; ``IdentityDep`` is shared by the other identity routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from nova.api.deps import PrincipalDep
from nova.errors import PayloadTooLarge, ServiceUnavailable, Unauthorized
from nova.identity.components import IdentityComponents
from nova.identity.service import IdentityService, TokenPair


async def get_identity(request: Request) -> IdentityService:
    components: IdentityComponents | None = getattr(request.app.state, "identity", None)
    if components is None:
        raise ServiceUnavailable("The identity store is not configured on this server.")
    return components.service


IdentityDep = Annotated[IdentityService, Depends(get_identity)]
_MAX_BODY = 64 * 1024


async def small_body(request: Request) -> None:
    """Identity endpoints take tiny JSON bodies: refuse big ones by their declared size (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > _MAX_BODY:
        raise PayloadTooLarge(f"Request body exceeds {_MAX_BODY} bytes.")


SmallBody = [Depends(small_body)]
router = APIRouter(prefix="/v1/auth", tags=["auth"], dependencies=SmallBody)


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


def _tokens(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    }


@router.post("/login")
async def login(body: Credentials, identity: IdentityDep) -> dict[str, Any]:
    """Password login → short-lived access JWT + rotating refresh token."""
    return _tokens(await identity.login(body.username, body.password))


@router.post("/refresh")
async def refresh(body: RefreshBody, identity: IdentityDep) -> dict[str, Any]:
    """Spend a refresh token for a new pair; replaying a spent one revokes its whole session."""
    return _tokens(await identity.refresh(body.refresh_token))


@router.post("/logout", status_code=204)
async def logout(body: RefreshBody, request: Request, identity: IdentityDep) -> None:
    """Revoke the session; when called with the access token, that token stops working too."""
    jti = exp = None
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.count(".") == 2:
        try:
            claims = identity.jwt.verify(token.strip())
            jti, exp = claims.jti, claims.expires_at
        except Unauthorized:  # an invalid access token does not stop the refresh token's revocation
            jti = None
    await identity.logout(body.refresh_token, jti, exp)


@router.post("/signup", status_code=201)
async def signup(body: Credentials, identity: IdentityDep) -> dict[str, Any]:
    """Open sign-up (``NOVA_SIGNUP_ENABLED``); 403 when disabled."""
    user = await identity.signup(body.username, body.password)
    return {"id": user.id, "username": user.username, "role": user.role}


@router.get("/me")
async def me(principal: PrincipalDep) -> dict[str, Any]:
    return {
        "user_id": principal.user_id,
        "role": principal.role,
        "key_id": principal.key_id,
        "allowed_models": sorted(principal.allowed_models) if principal.allowed_models is not None else None,
    }
