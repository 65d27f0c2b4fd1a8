"""FastAPI's native OpenTelemetry switch, from ``NOVA_OTEL_ENABLED``.

Off, its per-request check of the global tracer/meter/logger providers is skipped entirely; on,
FastAPI emits spans, metrics and logs to whatever providers the deployment configures
(``FASTAPI_OTEL_AUTO_CONFIGURE=true`` + the standard ``OTEL_*`` variables for OTLP export).
"""

from __future__ import annotations

from fastapi.telemetry import TelemetryConfig

from nova.config import Settings


def telemetry_config(settings: Settings) -> TelemetryConfig:
    on = settings.otel_enabled
    return {"tracing": on, "metrics": on, "logs": on}
