"""Liveness and readiness probes (unauthenticated, for orchestrators)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from nova.api.deps import PoolDep

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request, pool: PoolDep) -> Response:
    """Ready when every model has a healthy replica and every store it needs answers."""
    models = pool.ready()
    checks: dict[str, Any] = {"models": models}
    ok = all(models.values())
    probes = request.app.state.readiness
    results = await asyncio.gather(*(probe() for probe in probes.values()))  # each one bounded
    for name, healthy in zip(probes, results, strict=True):
        checks[name] = healthy
        ok = ok and healthy
    body = orjson.dumps({"status": "ready" if ok else "unavailable", "checks": checks})
    return Response(body, status_code=200 if ok else 503, media_type="application/json")
