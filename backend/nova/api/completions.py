"""``/v1/chat/completions`` and ``/v1/completions``: parse, authenticate, hand to the service."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from nova.api.deps import get_principal, read_body
from nova.api.errors import error_response
from nova.api.streaming import ClientGone, RelayStreamResponse, cancel_on_disconnect
from nova.config import Settings
from nova.errors import MethodNotAllowed, NovaError
from nova.identity.principal import Principal
from nova.llm.protocol import Route as RouteName
from nova.llm.protocol import parse_request
from nova.llm.relay import Reply
from nova.llm.serving import CompletionService


async def _serve(route: RouteName, request: Request, principal: Principal) -> Response:
    # Hot path: one dependency (auth); components come straight from app.state, because every
    # extra FastAPI dependency or header parameter costs measurable microseconds per request.
    state = request.app.state
    service: CompletionService = state.completions
    settings: Settings = state.settings
    raw = await read_body(request, settings.max_body_bytes)
    view = parse_request(raw, route, request.headers.get("x-session-id"))
    ctx = request.scope["state"]
    try:
        call, result = await cancel_on_disconnect(
            request.receive, service.start(principal, view, ctx["request_id"], ctx["started"])
        )
    except ClientGone:
        return Response(status_code=499)
    headers = call.lease.headers if call.lease is not None else {}
    if isinstance(result, Reply):
        return Response(
            result.body,
            status_code=result.status,
            headers={**headers, **result.headers} if result.headers else headers,
            media_type="application/json",
        )
    return RelayStreamResponse(result, settings, headers, lambda outcome: service.finish(call, outcome))


_ROUTES: dict[str, RouteName] = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}


class RelayEndpoints:
    """ASGI middleware that serves ``POST /v1/chat/completions`` and ``POST /v1/completions``.

    The hot path skips FastAPI's router, dependency solving and exception middleware: measured
    with py-spy under wrk they cost about a third of the gateway's CPU per request, more than
    the relay itself. It still sits inside the request-id and CORS middleware, authenticates with
    the same ``get_principal`` the routers use, and renders errors with the same handlers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed("Method Not Allowed", headers={"Allow": "POST"})
            response = await _serve(route, request, await get_principal(request))
        except NovaError as err:
            response = error_response(err)
        except ClientDisconnect:
            return
        await response(scope, receive, send)
