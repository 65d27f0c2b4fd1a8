"""The built UI at ``/`` with single-page-app fallback; API paths never fall back to HTML."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

_API_PREFIXES = ("/v1", "/admin", "/health", "/metrics")


class SpaStaticFiles(StaticFiles):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, html=True, check_dir=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or scope["path"].startswith(_API_PREFIXES):
                raise
            return await super().get_response("index.html", scope)
