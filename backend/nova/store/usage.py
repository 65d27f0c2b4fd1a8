"""Usage events: what one request cost, handed to a sink off the response path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    user_id: str
    key_id: str | None
    model: str
    route: str
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class UsageSink(Protocol):
    def record(self, event: UsageEvent) -> None:
        """Queue the event; never blocks and never raises on the request path."""
        ...
