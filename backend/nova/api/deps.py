"""Annotated dependencies: what a route needs, taken from ``app.state`` built by the lifespan.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, which costs
more than the whole relay on the hot path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from nova.config import Settings
from nova.errors import Forbidden, PayloadTooLarge, Unauthorized
from nova.identity.authenticator import Authenticator
from nova.identity.principal import Principal
from nova.llm.pool import UpstreamPool
from nova.llm.serving import CompletionService
from nova.observability import metrics


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_pool(request: Request) -> UpstreamPool:
    pool: UpstreamPool = request.app.state.pool
    return pool


async def get_completions(request: Request) -> CompletionService:
    service: CompletionService = request.app.state.completions
    return service


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized(
            "You didn't provide an API key. Use the Authorization header: 'Bearer YOUR_KEY'.",
            code="missing_api_key",
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Malformed Authorization header; expected 'Bearer YOUR_KEY'.")
    return token


async def get_principal(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    try:
        return await authenticator.authenticate(bearer_token(request.headers.get("authorization")))
    except Unauthorized:
        metrics.AUTH_FAILURES.inc()
        raise


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This endpoint requires the admin role.")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[UpstreamPool, Depends(get_pool)]
CompletionsDep = Annotated[CompletionService, Depends(get_completions)]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading them when possible."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            size = -1
        if size > limit:
            raise PayloadTooLarge(f"Request body of {size} bytes exceeds the limit of {limit} bytes.")
        if size >= 0:
            return await request.body()
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
