"""``/metrics`` in Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from nova.observability.metrics import render

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
