"""Rendering every failure in OpenAI's error shape, with the status the error carries."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from nova.errors import BadRequest, NovaError, ServiceUnavailable

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


async def _store_unreachable(_: Request, exc: Exception) -> Response:
    """A database that is down or cut off is the server's temporary state, not a bug: 503 and
    ``Retry-After`` so clients back off and retry, instead of a 500 they would give up on."""
    if isinstance(exc, DBAPIError) and not _is_connection_error(exc):
        return await _unhandled(_, exc)  # constraint violations and SQL errors are bugs: 500
    log.warning("database unreachable: %s", exc.__class__.__name__)
    return error_response(
        ServiceUnavailable(
            "The database is temporarily unavailable; retry shortly.",
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )
    )


def _is_connection_error(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    name = type(orig).__name__ if orig is not None else ""
    # asyncpg: ConnectionDoesNotExistError, InterfaceError on a closed connection; aiosqlite:
    # "unable to open database file" surfaces as OperationalError.
    return isinstance(orig, OSError) or "Connection" in name or type(exc).__name__ == "OperationalError"


async def _unhandled(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(NovaError("Internal server error.", code="internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NovaError, _nova)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    for unreachable in (DBAPIError, PoolTimeout, ConnectionError):
        app.add_exception_handler(unreachable, _store_unreachable)
    app.add_exception_handler(Exception, _unhandled)
