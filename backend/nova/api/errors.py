"""Rendering every failure in OpenAI's error shape, with the status the error carries."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from nova.errors import BadRequest, NovaError

log = logging.getLogger("nova.errors")

_HTTP_TYPES = {
    404: ("not_found", "invalid_request_error"),
    405: ("method_not_allowed", "invalid_request_error"),
}


def error_response(err: NovaError) -> Response:
    return Response(
        err.json_bytes(), status_code=err.status, headers=err.headers, media_type="application/json"
    )


async def _nova(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, NovaError)
    return error_response(exc)


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    msg = f"{param}: {first.get('msg')}" if param else str(first.get("msg", "Invalid request."))
    return error_response(BadRequest(msg, param=param, code="invalid_value"))


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, typ = _HTTP_TYPES.get(exc.status_code, ("http_error", "invalid_request_error"))
    err = NovaError(str(exc.detail), code=code, headers=dict(exc.headers or {}))
    err.status, err.type = exc.status_code, typ
    return error_response(err)


async def _client_gone(_: Request, exc: Exception) -> Response:
    # The client left while sending its body: nothing to answer, nothing worth a traceback.
    return Response(status_code=499)


async def _unhandled(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(NovaError("Internal server error.", code="internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NovaError, _nova)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unhandled)
