"""The completions use case: admit, relay, then account — independent of HTTP.

``start`` does everything that may still fail cleanly (model lookup, permission, rate limits,
picking and reaching a replica); ``finish`` does the bookkeeping (metrics, usage event, token
settlement) once the response is over, off the response path.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from nova.config import Settings
from nova.errors import BadRequest, Forbidden, NovaError
from nova.identity.principal import Principal
from nova.limits.admission import Admission, Lease, Unlimited
from nova.llm.pool import UpstreamPool
from nova.llm.protocol import RequestView, Route
from nova.llm.relay import Outcome, Relay, Reply, Stream
from nova.observability import metrics
from nova.observability.logging import AccessLog
from nova.rag.backend import RagBackend
from nova.rag.grounding import nova_extension
from nova.store.usage import UsageEvent, UsageSink


def _with_extension(body: bytes, nova: dict[str, Any]) -> bytes:
    obj = orjson.loads(body)
    obj["nova"] = nova
    return orjson.dumps(obj)


class ChatMemory(Protocol):
    """Server-side conversations, plugged into the relay when a request has ``conversation_id``.

    ``prepare`` checks ownership, stores the user's new message(s) *before* the upstream is
    called, and rewrites ``view.body["messages"]`` to the assembled history (setting
    ``view.modified``); ``complete`` stores the assistant's answer (complete, partial after a
    disconnect, or the error) off the response path and must never raise.
    """

    async def prepare(
        self, principal: Principal, view: RequestView, model: str, context_window: int | None
    ) -> Any: ...

    def complete(self, turn: Any, outcome: Outcome) -> None: ...


@dataclass(slots=True)
class Call:
    view: RequestView
    principal: Principal
    model: str
    request_id: str
    started: float
    lease: Lease | None = None
    turn: Any = None
    nova: dict[str, Any] | None = None  # the response's ``nova`` extension (citations)


class CompletionService:
    def __init__(
        self,
        pool: UpstreamPool,
        relay: Relay,
        admission: Admission,
        usage: UsageSink,
        settings: Settings,
        memory: ChatMemory | None = None,
        rag: RagBackend | None = None,
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._admission = admission
        self._usage = usage
        self._settings = settings
        self._background: set[asyncio.Task[None]] = set()
        self._open_lease = isinstance(admission, Unlimited)
        self._access = AccessLog()
        self._access_enabled = self._access.enabled
        self.memory = memory
        self.rag = rag

    async def start(
        self, principal: Principal, view: RequestView, request_id: str, started: float
    ) -> tuple[Call, Reply | Stream]:
        call = Call(view, principal, view.model, request_id, started)
        try:
            served = self._pool.resolve(view.model)
            call.model = served.name
            if not principal.may_use(served.name) and not principal.may_use(view.model):
                raise Forbidden(f"This key may not use model {view.model!r}.", param="model")
            call.lease = await self._admission.acquire(principal, served.name, view.estimated_tokens)
            if view.conversation_id is not None:
                if self.memory is None:
                    raise BadRequest("Server-side conversations are not enabled.", param="conversation_id")
                window = served.spec.context_window
                call.turn = await self.memory.prepare(principal, view, served.name, window)
                view.collect_content = True
            if view.rag is not None:
                call.nova = await self._ground(principal, view)
            result = await self._relay.forward(view, served, request_id)
        except NovaError as err:
            self.finish(call, Outcome(status=err.status, error=err.code))
            raise
        except BaseException:  # cancelled (client gone) or a bug: settle and account, then propagate
            self.finish(call, Outcome(status=499, error="client_disconnected", client_gone=True))
            raise
        if call.nova is not None:
            if isinstance(result, Stream):
                result.extra_first = {"nova": call.nova}
            elif result.status == 200:
                result.body = _with_extension(result.body, call.nova)
        if isinstance(result, Reply):
            self.finish(call, result.outcome)
        return call, result

    async def admit(
        self, principal: Principal, model: str, route: Route, estimated_tokens: int, request_id: str
    ) -> Call:
        """Admission for routes Nova serves itself (embeddings): the same model permission, rate
        limits and, through ``finish``, the same usage events, metrics and access log as a relay."""
        view = RequestView(route, {}, b"", model, False, False, None, None, None, None)
        call = Call(view, principal, model, request_id, time.perf_counter())
        try:
            if not principal.may_use(model):
                raise Forbidden(f"This key may not use model {model!r}.", param="model")
            call.lease = await self._admission.acquire(principal, model, estimated_tokens)
        except NovaError as err:
            self.finish(call, Outcome(status=err.status, error=err.code))
            raise
        return call

    async def _ground(self, principal: Principal, view: RequestView) -> dict[str, Any]:
        """Retrieve for the ``rag`` extension and inject numbered sources (after memory, so the
        stored conversation keeps the user's own words, not the injected context)."""
        if self.rag is None:
            raise BadRequest("Retrieval (RAG) is not enabled on this server.", param="rag")
        if view.route != "chat":
            raise BadRequest("The 'rag' extension needs /v1/chat/completions.", param="rag")
        assert view.rag is not None
        messages, citations = await self.rag.augment_chat(view.body["messages"], view.rag, principal.user_id)
        view.body["messages"] = messages
        view.modified = True
        return nova_extension(citations)

    def finish(self, call: Call, outcome: Outcome) -> None:
        """Metrics, usage and lease settlement; never raises, never awaits."""
        elapsed = time.perf_counter() - call.started
        route, model, status = call.view.route, call.model, outcome.status
        metrics.REQUESTS.labels(route, model, str(status)).inc()
        metrics.REQUEST_DURATION.labels(route, model).observe(elapsed)
        if outcome.ttft is not None:
            metrics.TTFT.labels(model).observe(outcome.ttft)
        if outcome.prompt_tokens:
            metrics.TOKENS.labels(model, "prompt").inc(outcome.prompt_tokens)
        if outcome.completion_tokens:
            metrics.TOKENS.labels(model, "completion").inc(outcome.completion_tokens)
        if outcome.client_gone:
            metrics.CLIENT_DISCONNECTS.labels(route).inc()
        p = call.principal
        self._usage.record(
            UsageEvent(
                request_id=call.request_id,
                user_id=p.user_id,
                key_id=p.key_id,
                model=model,
                route=route,
                status=status,
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                latency_ms=elapsed * 1000.0,
                ttft_ms=outcome.ttft * 1000.0 if outcome.ttft is not None else None,
            )
        )
        if call.turn is not None and self.memory is not None:
            self.memory.complete(call.turn, outcome)
        lease = call.lease
        if lease is not None and not self._open_lease:
            task = asyncio.get_running_loop().create_task(
                lease.settle(outcome.prompt_tokens + outcome.completion_tokens)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if self._access_enabled:
            self._access.write(
                {
                    "route": route,
                    "model": model,
                    "status": status,
                    "duration_ms": round(elapsed * 1000.0, 2),
                    "ttft_ms": round(outcome.ttft * 1000.0, 2) if outcome.ttft is not None else None,
                    "prompt_tokens": outcome.prompt_tokens,
                    "completion_tokens": outcome.completion_tokens,
                    "upstream": outcome.upstream,
                    "user": p.user_id,
                    "error": outcome.error,
                }
            )

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
