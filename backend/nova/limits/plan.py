"""What both admission backends share: which limits apply to a principal, header rendering and
the refusal error. Keeping this in one place is what lets the Redis and in-process backends pass
the same contract tests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from nova.errors import RateLimited
from nova.identity.principal import Principal
from nova.observability.metrics import RATE_LIMITED

WINDOW_MS = 60_000
# Month-to-date tokens of a key from the usage table: seeds a budget counter the backend lost
# (process or Redis restart). Called at most once per key per month per counter lifetime.
BudgetSeeder = Callable[[str, datetime], Awaitable[int]]
NONE = -1  # "no limit" in the scripts


@dataclass(frozen=True, slots=True)
class Plan:
    key_rpm: int
    user_rpm: int
    key_tpm: int
    key_concurrency: int
    key_budget: int

    @property
    def empty(self) -> bool:
        return (self.key_rpm, self.user_rpm, self.key_tpm, self.key_concurrency, self.key_budget) == (
            NONE,
        ) * 5

    @property
    def needs_settle(self) -> bool:
        return self.key_tpm != NONE or self.key_concurrency != NONE or self.key_budget != NONE


def plan_for(principal: Principal, model: str) -> Plan:
    """Allowed-models is checked by the caller (it knows aliases); limits are per key/user, not model."""
    lim = principal.limits
    has_key = principal.key_id is not None

    def v(x: int | None, applies: bool = True) -> int:
        return x if (x is not None and applies) else NONE

    return Plan(
        key_rpm=v(lim.requests_per_minute, has_key),
        user_rpm=v(principal.user_requests_per_minute),
        key_tpm=v(lim.tokens_per_minute, has_key),
        key_concurrency=v(lim.max_concurrent, has_key),
        key_budget=v(lim.monthly_token_budget, has_key),
    )


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def month_tag(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m")


def seconds_to_next_month(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, int((nxt - now).total_seconds()) + 1)


class MonthClock:
    """``(month tag, seconds to the next month)`` per request without building datetimes: both
    are recomputed only when a month boundary passes (the hot path calls this on every acquire)."""

    __slots__ = ("_next", "_tag")

    def __init__(self) -> None:
        self._next = 0.0
        self._tag = ""

    def read(self) -> tuple[str, int]:
        t = time.time()
        if t >= self._next:
            now = datetime.fromtimestamp(t, UTC)
            self._tag = month_tag(now)
            self._next = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC).timestamp()
        return self._tag, max(1, int(self._next - t) + 1)


def fmt_duration(ms: int) -> str:
    """OpenAI's reset format: ``20ms``, ``1s``, ``6m0s``."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    s = (ms + 999) // 1000
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


def headers(
    req_limit: int,
    req_remaining: int,
    req_reset_ms: int,
    tok_limit: int,
    tok_remaining: int,
    tok_reset_ms: int,
) -> dict[str, str]:
    h: dict[str, str] = {}
    if req_limit != NONE:
        h["x-ratelimit-limit-requests"] = str(req_limit)
        h["x-ratelimit-remaining-requests"] = str(max(req_remaining, 0))
        h["x-ratelimit-reset-requests"] = fmt_duration(req_reset_ms)
    if tok_limit != NONE:
        h["x-ratelimit-limit-tokens"] = str(tok_limit)
        h["x-ratelimit-remaining-tokens"] = str(max(tok_remaining, 0))
        h["x-ratelimit-reset-tokens"] = fmt_duration(tok_reset_ms)
    return h


_MESSAGES = {
    "key_requests": "Rate limit reached for requests per minute on this API key.",
    "user_requests": "Rate limit reached for requests per minute on this user.",
    "key_tokens": "Rate limit reached for tokens per minute on this API key.",
    "key_tokens_too_large": "Request too large for the tokens per minute limit of this API key.",
    "key_concurrency": "Too many concurrent requests on this API key.",
    "key_budget": "Monthly token budget of this API key exhausted.",
}


def refuse(scope: str, retry_after_ms: int, hdrs: dict[str, str]) -> RateLimited:
    RATE_LIMITED.labels(scope=scope).inc()
    retry = max(1, (retry_after_ms + 999) // 1000)
    out = dict(hdrs)
    out["Retry-After"] = str(retry)
    code = "insufficient_quota" if scope == "key_budget" else "rate_limit_exceeded"
    return RateLimited(f"{_MESSAGES[scope]} Retry after {retry}s.", code=code, headers=out)
