"""Exception hierarchy that maps onto OpenAI's error JSON.

Every error a client can see is a ``NovaError``: domain code raises the subclass that names
what went wrong, and the HTTP layer renders ``{"error": {message, type, code, param}}`` with
the status the class carries. Domain modules never build HTTP responses themselves.
"""

from __future__ import annotations

from typing import Any

import orjson


class NovaError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    def sse_event(self) -> bytes:
        """The same error as one SSE event, for failures after a stream has started."""
        return b"data: " + self.json_bytes() + b"\n\n"


class BadRequest(NovaError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(NovaError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(NovaError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(NovaError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(NovaError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class Conflict(NovaError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(NovaError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class Unprocessable(NovaError):
    status = 422
    type = "invalid_request_error"
    code = "unprocessable_entity"


class RateLimited(NovaError):
    status = 429
    type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"


class UpstreamError(NovaError):
    """The model server answered with an error or broke the connection."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class ServiceUnavailable(NovaError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class UpstreamTimeout(NovaError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"
