"""Forwarding one request to the pool: retries before the first byte, then a byte relay.

Fast path: upstream SSE bytes are forwarded in the blocks they arrive in, cut at event
boundaries; only an event that carries ``usage`` (once per stream) is parsed. One
``asyncio.timeout`` per stream enforces the chunk-gap and total deadlines and doubles as the
cancellation switch when the client goes away (closing the upstream connection makes vLLM
abort the request and free its KV cache).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from nova.config import Settings
from nova.errors import (
    NovaError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from nova.llm.pool import ServedModel, UpstreamPool
from nova.llm.protocol import RequestView, upstream_payload
from nova.llm.routing import Deployment, prefix_key
from nova.observability import metrics

log = logging.getLogger("nova.relay")

_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_CONNECT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError)
Write = Callable[[bytes], Awaitable[None]]


@dataclass(slots=True)
class Outcome:
    """What happened, for metrics, usage accounting and memory."""

    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_seen: bool = False
    ttft: float | None = None
    upstream: str | None = None
    error: str | None = None
    client_gone: bool = False
    complete: bool = False
    content: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Reply:
    """A finished (non-streamed or error) response to send as is."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    outcome: Outcome = field(default_factory=Outcome)


class Stream:
    """An upstream stream that produced its first bytes; the client has seen nothing yet."""

    __slots__ = (
        "_cm",
        "_first",
        "_resp",
        "_tail",
        "collect_content",
        "dep",
        "extra_first",
        "outcome",
        "started",
        "strip_usage",
    )

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        dep: Deployment,
        first: bytes,
        outcome: Outcome,
        started: float,
        strip_usage: bool,
    ) -> None:
        self._resp = resp
        self.dep = dep
        self._first = first
        self._tail = b""
        self._cm: asyncio.Timeout | None = None
        self.outcome = outcome
        self.started = started
        self.strip_usage = strip_usage
        self.extra_first: dict[str, Any] | None = None
        self.collect_content = False

    def cancel(self) -> None:
        """The client went away: stop at the next await, whatever it is."""
        self.outcome.client_gone = True
        cm = self._cm
        if cm is not None and cm.expired() is False:
            try:
                cm.reschedule(asyncio.get_running_loop().time())
            except RuntimeError:  # timeout context already left
                pass

    def _cut(self, data: bytes) -> bytes:
        buf = self._tail + data if self._tail else data
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._tail = buf
            return b""
        out, self._tail = buf[: end + 2], buf[end + 2 :]
        if b'"usage":{' in out:
            out = self._take_usage(out)
        if self.collect_content:
            self._collect(out)
        if not self.outcome.usage_seen:
            self.outcome.completion_tokens += out.count(b"data: {")
        if b"data: [DONE]" in out:
            self.outcome.complete = True
        return out

    def _take_usage(self, block: bytes) -> bytes:
        kept: list[bytes] = []
        for event in block.split(b"\n\n"):
            if b'"usage":{' in event and event.startswith(b"data: {"):
                try:
                    obj = orjson.loads(event[6:])
                except orjson.JSONDecodeError:
                    kept.append(event)
                    continue
                usage = obj.get("usage") or {}
                o = self.outcome
                o.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                o.completion_tokens = int(usage.get("completion_tokens") or 0)
                o.usage_seen = True
                if self.strip_usage and not obj.get("choices"):
                    continue
            kept.append(event)
        return b"\n\n".join(kept)

    def _collect(self, block: bytes) -> None:
        for event in block.split(b"\n\n"):
            if not event.startswith(b"data: {"):
                continue
            try:
                obj = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                continue
            for choice in obj.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                piece = delta.get("content") if "delta" in choice else choice.get("text")
                if piece:
                    self.outcome.content.append(piece)

    def _first_block(self) -> bytes:
        out = self._cut(self._first)
        if self.extra_first and out.startswith(b"data: {"):
            end = out.find(b"\n\n")
            obj = orjson.loads(out[6:end])
            obj.update(self.extra_first)
            out = b"data: " + orjson.dumps(obj) + out[end:]
        return out

    async def pump(self, write: Write, settings: Settings) -> None:
        """Relay the rest of the stream to ``write``; never raises for upstream or client failure."""
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + settings.upstream_total_timeout - (time.perf_counter() - self.started)
        gap = settings.upstream_chunk_timeout
        content = self._resp.content
        o = self.outcome
        failure: NovaError | None = None
        try:
            async with asyncio.timeout(None) as cm:
                self._cm = cm
                if o.client_gone:
                    raise TimeoutError
                first = self._first_block()
                if first:
                    await write(first)
                # Move the gap deadline only when it has drifted by `slack` (10% of the gap, at
                # most 1 s): rescheduling a timer per chunk is measurable at tens of thousands of
                # chunks per second, and a gap limit honoured to within 10% is still a gap limit.
                slack = min(1.0, gap * 0.1)
                cm.reschedule(min(loop.time() + gap, total_deadline))
                while True:
                    deadline = min(loop.time() + gap, total_deadline)
                    when = cm.when()
                    if when is not None and deadline - when > slack:
                        cm.reschedule(deadline)
                    data = await content.readany()
                    if not data:
                        break
                    out = self._cut(data)
                    if out:
                        await write(out)
            if not o.complete:
                failure = UpstreamError("The model server closed the stream before it finished.")
                self.dep.upstream.record_failure("stream_truncated")
        except TimeoutError:
            if not o.client_gone:
                timed_out_total = loop.time() >= total_deadline
                failure = UpstreamTimeout(
                    "Request exceeded the total time limit."
                    if timed_out_total
                    else f"No data from the model server for {gap:g}s."
                )
                self.dep.upstream.record_failure("timeout")
        except _CONNECT_ERRORS:
            failure = UpstreamError("The model server connection broke mid-stream.")
            self.dep.upstream.record_failure("stream_reset")
        except OSError:  # writing to a client that is gone
            o.client_gone = True
        finally:
            self._cm = None
            if o.complete:
                self._resp.release()
            else:
                self._resp.close()
            self.dep.upstream.end()
        if o.client_gone:
            o.status = 499
            o.error = "client_disconnected"
            return
        if failure is not None:
            o.status, o.error = failure.status, failure.code
            try:
                await write(failure.sse_event())
            except OSError:
                o.client_gone = True
        else:
            self.dep.upstream.record_success()


class Relay:
    def __init__(self, pool: UpstreamPool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    def _affinity(self, served: ServedModel, view: RequestView) -> bytes | None:
        policy = served.spec.routing.policy
        if policy == "least_outstanding":
            return None
        if view.conversation_id:  # a server-side conversation always sticks to its replica
            return view.conversation_id.encode()
        if policy == "session" and view.session_key:
            return view.session_key.encode()
        if policy == "prefix":
            if view.route == "chat":
                return prefix_key(view.body.get("messages"), served.spec.routing.prefix_messages)
            return prefix_key(view.body.get("prompt"), 1)
        return None

    async def _backoff(self, attempt: int) -> None:
        base = self._settings.upstream_retry_backoff * (2**attempt)
        await asyncio.sleep(base * (0.5 + random.random()))

    async def forward(self, view: RequestView, served: ServedModel, request_id: str) -> Reply | Stream:
        """Send to a replica, retrying elsewhere until bytes would reach the client."""
        s = self._settings
        started = time.perf_counter()
        path = _PATHS[view.route]
        affinity = self._affinity(served, view)
        tried: list[Deployment] = []
        tiebreak = self._pool.next_tiebreak()
        payloads: dict[str, bytes] = {}
        last: NovaError | None = None
        attempts = s.upstream_retries + 1
        outcome = Outcome()
        for attempt in range(attempts):
            try:
                dep = served.pick(affinity, tried, tiebreak)
            except ServiceUnavailable:
                if not tried:
                    raise
                dep = tried[-1]  # every replica tried: back off and retry the last one
            if dep in tried:
                await self._backoff(attempt)
            else:
                tried.append(dep)
            if attempt:
                metrics.UPSTREAM_RETRIES.labels(served.name).inc()
            up = dep.upstream
            payload = payloads.get(dep.upstream_model)
            if payload is None:
                payload = payloads[dep.upstream_model] = upstream_payload(view, dep.upstream_model)
            outcome.upstream = up.id
            up.begin()
            handed_off = consumed = False
            resp: aiohttp.ClientResponse | None = None
            try:
                first_deadline = s.upstream_ttft_timeout if view.stream else s.upstream_total_timeout
                async with asyncio.timeout(first_deadline):
                    resp = await up.session.post(
                        up.base_url + path, data=payload, headers=up.headers(request_id)
                    )
                    if resp.status != 200:
                        body = await resp.read()
                        consumed = True
                        if resp.status in _RETRYABLE_STATUS and attempt + 1 < attempts:
                            up.record_failure(f"http_{resp.status}")
                            last = self._upstream_status_error(resp, body)
                            continue
                        if resp.status >= 500:
                            up.record_failure(f"http_{resp.status}")
                        err = self._upstream_status_error(resp, body)
                        outcome.status, outcome.error = err.status, "upstream_status"
                        return Reply(
                            err.status, body if resp.status < 500 else err.json_bytes(), err.headers, outcome
                        )
                    if view.stream:
                        first = await resp.content.readany()
                        if not first:
                            raise aiohttp.ServerDisconnectedError("empty stream")
                        outcome.ttft = time.perf_counter() - started
                        handed_off = True
                        stream = Stream(resp, dep, first, outcome, started, not view.client_wants_usage)
                        stream.collect_content = view.collect_content
                        return stream
                    body = await resp.read()
                    consumed = True
                up.record_success()
                self._meter_json(body, outcome, view.collect_content)
                return Reply(200, body, outcome=outcome)
            except TimeoutError:
                up.record_failure("timeout")
                raise UpstreamTimeout(
                    "Timed out waiting for the model server's first token."
                    if view.stream
                    else "Timed out waiting for the model server."
                ) from None
            except (*_CONNECT_ERRORS, OSError) as err:
                up.record_failure("connect")
                log.warning("upstream attempt failed", extra={"upstream": up.id, "error": repr(err)})
                last = ServiceUnavailable(
                    f"Model server unreachable for {served.name!r}.",
                    code="upstream_unavailable",
                    headers={"Retry-After": "1"},
                )
            finally:
                if not handed_off:
                    up.end()
                    if resp is not None:
                        if consumed:
                            resp.release()
                        else:
                            resp.close()
        assert last is not None
        raise last

    @staticmethod
    def _upstream_status_error(resp: aiohttp.ClientResponse, body: bytes) -> NovaError:
        message = f"Model server returned HTTP {resp.status}."
        try:
            parsed = orjson.loads(body)
            if isinstance(parsed, dict):
                e = parsed.get("error", parsed)
                if isinstance(e, dict) and isinstance(e.get("message"), str):
                    message = e["message"]
                elif isinstance(parsed.get("message"), str):
                    message = parsed["message"]
        except orjson.JSONDecodeError:
            pass
        if resp.status == 429:
            return RateLimited(message, headers={"Retry-After": resp.headers.get("Retry-After", "1")})
        if resp.status >= 500:
            return UpstreamError(message)
        err = NovaError(message)
        err.status = resp.status
        err.type = "invalid_request_error"
        return err

    @staticmethod
    def _meter_json(body: bytes, outcome: Outcome, collect: bool) -> None:
        outcome.complete = True
        try:
            parsed = orjson.loads(body)
            usage = parsed.get("usage") or {}
        except (orjson.JSONDecodeError, AttributeError):
            return
        if collect:
            for choice in parsed.get("choices") or ():
                if choice.get("index", 0) == 0:
                    msg = choice.get("message")
                    text = msg.get("content") if isinstance(msg, dict) else choice.get("text")
                    if isinstance(text, str):
                        outcome.content.append(text)
        outcome.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        outcome.completion_tokens = int(usage.get("completion_tokens") or 0)
        outcome.usage_seen = True
