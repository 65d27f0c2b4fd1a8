"""Request ids: taken from ``x-request-id`` when sane, generated otherwise, echoed on every
response and available to logs and upstream calls through a context variable."""

from __future__ import annotations

import re
import secrets
import time
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_SAFE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    return secrets.token_hex(12)


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): one header lookup and one closure per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE.match(candidate):
                    rid = candidate
                break
        if rid is None:
            rid = new_request_id()
        request_id_var.set(rid)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        state["started"] = time.perf_counter()
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
