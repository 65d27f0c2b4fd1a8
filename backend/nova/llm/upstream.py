"""One upstream deployment: its pooled HTTP client, load and health state.

Health combines two signals: the active checker (vLLM ``/health``) and passive ejection after
consecutive failures on real traffic. An ejected upstream comes back on its own after
``eject_seconds`` (half-open): one success resets it, one more failure ejects it again.
"""

from __future__ import annotations

import time

import aiohttp

from nova.observability import metrics


class Upstream:
    __slots__ = (
        "_eject_after",
        "_eject_seconds",
        "_gauge",
        "api_key",
        "base_url",
        "consecutive_failures",
        "ejected_until",
        "healthy",
        "id",
        "outstanding",
        "root_url",
        "session",
    )

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout: float,
        pool_timeout: float,
        max_connections: int,
        keepalive_seconds: float,
        eject_after_failures: int,
        eject_seconds: float,
    ) -> None:
        self.id = base_url
        self.base_url = base_url
        self.root_url = base_url[:-3] if base_url.endswith("/v1") else base_url
        self.api_key = api_key
        self.outstanding = 0
        self.healthy = True
        self.consecutive_failures = 0
        self.ejected_until = 0.0
        self._eject_after = eject_after_failures
        self._eject_seconds = eject_seconds
        self._gauge = metrics.UPSTREAM_IN_FLIGHT.labels(base_url)
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            keepalive_timeout=keepalive_seconds,
            enable_cleanup_closed=True,
            ttl_dns_cache=300,
        )
        # Per-phase timeouts are applied by the relay; the session only bounds connecting.
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=pool_timeout, sock_connect=connect_timeout),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),  # model servers set no cookies; skip the jar work
        )

    @property
    def available(self) -> bool:
        return self.healthy and time.monotonic() >= self.ejected_until

    def begin(self) -> None:
        self.outstanding += 1
        self._gauge.inc()

    def end(self) -> None:
        self.outstanding -= 1
        self._gauge.dec()

    def record_success(self) -> None:
        self.consecutive_failures = 0

    def record_failure(self, kind: str) -> None:
        metrics.UPSTREAM_ERRORS.labels(self.id, kind).inc()
        self.consecutive_failures += 1
        if self.consecutive_failures >= self._eject_after:
            self.ejected_until = time.monotonic() + self._eject_seconds

    def headers(self, request_id: str) -> dict[str, str]:
        h = {"Content-Type": "application/json", "X-Request-Id": request_id}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    async def check_health(self, timeout_s: float) -> bool:
        try:
            async with self.session.get(
                self.root_url + "/health", timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            ok = False
        if ok and not self.healthy:
            self.consecutive_failures = 0
            self.ejected_until = 0.0
        self.healthy = ok
        return ok

    async def close(self) -> None:
        await self.session.close()
