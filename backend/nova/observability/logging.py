"""Structured JSON logs (one object per line) carrying the request id of the current request."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from nova.observability.context import request_id_var

_STD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self._service,
            "request_id": request_id_var.get(),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class AccessLog:
    """One JSON line per relayed request, written straight to stdout.

    The ``logging`` machinery (record objects, handler locks, the generic formatter) measured at
    ~10% of gateway CPU per request; this writer keeps the same JSON line (``logger`` is
    ``nova.access``) for a fraction of that. It honours the level of the ``nova.access`` logger.
    """

    def __init__(self, service: str = "gateway") -> None:
        self._service = service
        self._out = sys.stdout

    @property
    def enabled(self) -> bool:
        return logging.getLogger("nova.access").isEnabledFor(logging.INFO)

    def write(self, fields: dict[str, Any]) -> None:
        line = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": "nova.access",
            "msg": "request",
            "service": self._service,
            "request_id": request_id_var.get(),
            **fields,
        }
        out = self._out
        out.write(orjson.dumps(line).decode())
        out.write("\n")
        out.flush()


def configure_logging(level: str, json_logs: bool, service: str = "gateway") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if json_logs:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # Nova logs its own access line
