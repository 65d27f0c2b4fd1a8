"""``/v1/ws/chat``: chat over one WebSocket, several requests (and conversations) interleaved.

Protocol (JSON text frames):
- auth: ``Sec-WebSocket-Protocol: nova.chat, bearer.<token>`` (the server selects ``nova.chat``),
  or a first frame ``{"type": "auth", "token": ...}``. Never in the URL (a ``token`` query
  parameter is refused). The server answers ``{"type": "ready"}``. The credential is checked
  again (in-process cache, microseconds) for every ``chat``, so a revoked key, a disabled user or
  an expired JWT closes the socket with 4401 at its next request; an ``auth`` frame later in the
  session swaps in a fresh token (e.g. a refreshed JWT) and is answered with ``ready`` again.
- ``{"type": "chat", "id": <client id>, "model", "messages", "conversation_id"?, ...}`` (any
  chat-completions field) -> ``{"type": "delta", "id", "content"}``... then
  ``{"type": "done", "id", "usage", "finish_reason"}`` or ``{"type": "error", "id", "error"}``.
- ``{"type": "cancel", "id"}`` stops generation and the upstream request (``done`` with
  ``"cancelled": true``); ``{"type": "ping"}`` -> ``{"type": "pong"}``; the server pings too.

Requests run through the same ``CompletionService.start`` + ``Stream.pump`` path as HTTP, so
limits, routing, retries, usage and conversation memory behave identically. Frames go out
through one bounded queue per socket: a client that leaves it full for ``ws_send_timeout`` is
closed with 4429 instead of growing memory. Close codes: 4400 bad frame, 4401 auth failure,
4429 client too slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from nova.config import Settings
from nova.errors import NovaError, Unauthorized
from nova.identity.authenticator import Authenticator
from nova.identity.principal import Principal
from nova.llm.protocol import parse_request
from nova.llm.relay import Outcome, Reply, Stream
from nova.llm.serving import Call, CompletionService
from nova.observability import metrics

log = logging.getLogger("nova.ws")

SUBPROTOCOL = "nova.chat"
BEARER_PREFIX = "bearer."
CLOSE_BAD_MESSAGE = 4400
CLOSE_AUTH = 4401
CLOSE_SLOW = 4429
_NOT_FORWARDED = ("type", "id")


class _Closing(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _SseToFrames:
    """Turns the SSE blocks ``Stream.pump`` writes into delta frames for one request."""

    __slots__ = ("error", "finish_reason", "req_id", "send")

    def __init__(self, req_id: str, send: Any) -> None:
        self.req_id = req_id
        self.send = send
        self.error: dict[str, Any] | None = None
        self.finish_reason: str | None = None

    async def write(self, block: bytes) -> None:
        for event in block.split(b"\n\n"):
            if not event.startswith(b"data: {"):
                continue
            try:
                obj = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                continue
            if "error" in obj and "choices" not in obj:
                self.error = obj["error"]
                continue
            frame: dict[str, Any] | None = None
            for choice in obj.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("tool_calls"):
                    frame = {"type": "delta", "id": self.req_id, "content": delta.get("content") or ""}
                    if delta.get("tool_calls"):
                        frame["tool_calls"] = delta["tool_calls"]
            if "nova" in obj:  # Nova extensions on the first chunk (e.g. citations)
                frame = frame or {"type": "delta", "id": self.req_id, "content": ""}
                frame["nova"] = obj["nova"]
            if frame is not None:
                await self.send(frame)


class ChatSocket:
    def __init__(self, ws: WebSocket) -> None:
        state = ws.app.state
        self.ws = ws
        self.settings: Settings = state.settings
        self.service: CompletionService = state.completions
        self.authenticator: Authenticator = state.authenticator
        self.out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(max(1, self.settings.ws_send_queue))
        self.active: dict[str, tuple[asyncio.Task[None], list[Stream]]] = {}
        self.principal: Principal | None = None
        self.token = ""
        self.closing: _Closing | None = None
        self.closed = asyncio.Event()

    # -- sending ------------------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame; waits (backpressure) while the buffer is full, closes a client that
        stays that slow."""
        if self.closing is not None:
            raise OSError("socket closing")
        try:
            self.out.put_nowait(frame)
            return
        except asyncio.QueueFull:
            pass
        try:
            await asyncio.wait_for(self.out.put(frame), self.settings.ws_send_timeout)
        except TimeoutError:
            self.close(CLOSE_SLOW, "client too slow: send buffer full")
            raise OSError("client too slow") from None

    def close(self, code: int, reason: str) -> None:
        """Stop every request (upstreams are cancelled, answers stored as partial) and leave."""
        if self.closing is not None:
            return
        self.closing = _Closing(code, reason)
        self.closed.set()
        for task, streams in self.active.values():
            if streams:
                streams[0].cancel()  # the pump stops at its next await, even a blocked send
            else:
                task.cancel()

    async def _sender(self) -> None:
        while self.closing is None:
            frame = await self.out.get()
            if frame is None:
                return
            await self.ws.send_text(orjson.dumps(frame).decode())

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ws_ping_interval)
            with contextlib.suppress(OSError):
                await self.send({"type": "ping"})

    # -- authentication -----------------------------------------------------------------------
    async def _authenticate(self, token: str) -> Principal:
        try:
            return await self.authenticator.authenticate(token)
        except Unauthorized:
            metrics.AUTH_FAILURES.inc()
            raise

    async def handshake(self) -> bool:
        ws = self.ws
        if "token" in ws.query_params or "api_key" in ws.query_params:
            await ws.accept()
            await ws.close(CLOSE_AUTH, "credentials in the URL are refused; use the first message")
            return False
        offered = ws.scope.get("subprotocols") or []
        bearer = next((p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)), None)
        await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        try:
            if bearer is not None:
                self.principal = await self._authenticate(bearer)
                self.token = bearer
            else:
                raw = await asyncio.wait_for(self._receive(), self.settings.ws_auth_timeout)
                msg = _loads(raw) if raw is not None else None
                if msg is None or msg.get("type") != "auth" or not isinstance(msg.get("token"), str):
                    await ws.close(CLOSE_AUTH, "first message must be {type: auth, token}")
                    return False
                self.principal = await self._authenticate(msg["token"])
                self.token = msg["token"]
        except TimeoutError:
            await ws.close(CLOSE_AUTH, "authentication timed out")
            return False
        except NovaError as err:
            await ws.close(CLOSE_AUTH, err.message[:120])
            return False
        await ws.send_text(orjson.dumps({"type": "ready"}).decode())
        return True

    async def _receive(self) -> str | bytes | None:
        """The next text or binary frame (JSON either way); ``None`` once the client is gone."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    # -- main loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            if not await self.handshake():
                return
        except (WebSocketDisconnect, RuntimeError):  # gone during the handshake
            return
        sender = asyncio.create_task(self._sender())
        pinger = asyncio.create_task(self._pinger())
        receiver = asyncio.create_task(self._receive_loop())
        closed = asyncio.create_task(self.closed.wait())
        try:
            await asyncio.wait({sender, receiver, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.close(1000, "bye")
            tasks = [t for t, _ in self.active.values()]
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)
            for t in (sender, receiver, pinger, closed):
                t.cancel()
            await asyncio.gather(sender, receiver, pinger, closed, return_exceptions=True)
            assert self.closing is not None
            if self.ws.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close(self.closing.code, self.closing.reason)

    async def _receive_loop(self) -> None:
        limit = self.settings.max_body_bytes
        while self.closing is None:
            try:
                raw = await self._receive()
            except (WebSocketDisconnect, RuntimeError):
                self.close(1000, "client gone")
                return
            if raw is None:
                self.close(1000, "client gone")
                return
            if len(raw) > limit:
                self.close(CLOSE_BAD_MESSAGE, "message too large")
                return
            msg = _loads(raw)
            kind = msg.get("type") if msg is not None else None
            if msg is None or not isinstance(kind, str):
                self.close(CLOSE_BAD_MESSAGE, "frames must be JSON objects with a type")
                return
            if kind == "ping":
                with contextlib.suppress(OSError):
                    await self.send({"type": "pong"})
            elif kind == "pong":
                continue
            elif kind == "auth":
                await self._reauthenticate(msg.get("token"))
            elif kind == "chat":
                req_id = msg.get("id")
                if not isinstance(req_id, str) or not req_id or len(req_id) > 128:
                    self.close(CLOSE_BAD_MESSAGE, "chat needs a string id")
                    return
                if req_id in self.active:
                    await self._send_error(
                        req_id, {"message": "This id is already in use.", "code": "duplicate_id"}
                    )
                    continue
                streams: list[Stream] = []
                task = asyncio.create_task(self._chat(req_id, msg, streams))
                self.active[req_id] = (task, streams)
                task.add_done_callback(functools.partial(self._forget, req_id))
            elif kind == "cancel":
                entry = self.active.get(msg.get("id") or "")
                if entry is not None:
                    task, streams = entry
                    if streams:
                        streams[0].cancel()  # the pump stops and closes the upstream request
                    else:
                        task.cancel()  # still waiting for the first token
            else:
                self.close(CLOSE_BAD_MESSAGE, f"unknown message type {kind[:40]!r}")
                return

    async def _reauthenticate(self, token: Any) -> None:
        if not isinstance(token, str):
            self.close(CLOSE_BAD_MESSAGE, "auth needs a string token")
            return
        try:
            self.principal = await self._authenticate(token)
        except Unauthorized as err:
            self.close(CLOSE_AUTH, err.message[:120])
            return
        except NovaError as err:  # identity store unreachable: keep the old credential
            with contextlib.suppress(OSError):
                await self.send({"type": "error", "id": None, "error": err.body()["error"]})
            return
        self.token = token
        with contextlib.suppress(OSError):
            await self.send({"type": "ready"})

    def _forget(self, req_id: str, _task: asyncio.Task[None]) -> None:
        self.active.pop(req_id, None)

    async def _send_error(self, req_id: str, error: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            await self.send({"type": "error", "id": req_id, "error": error})

    async def _chat(self, req_id: str, msg: dict[str, Any], streams: list[Stream]) -> None:
        """One request; whatever goes wrong, the client gets ``done`` or ``error`` for its id."""
        try:
            await self._chat_once(req_id, msg, streams)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("websocket chat %s failed", req_id)
            await self._send_error(req_id, {"message": "Internal server error.", "code": "internal_error"})

    async def _chat_once(self, req_id: str, msg: dict[str, Any], streams: list[Stream]) -> None:
        body = {k: v for k, v in msg.items() if k not in _NOT_FORWARDED}
        body["stream"] = True
        request_id = f"ws-{secrets.token_hex(10)}"
        try:
            principal = await self._authenticate(self.token)  # revoked since the handshake?
        except Unauthorized as err:
            await self._send_error(req_id, err.body()["error"])
            self.close(CLOSE_AUTH, err.message[:120])
            return
        except NovaError as err:
            await self._send_error(req_id, err.body()["error"])
            return
        self.principal = principal
        try:
            view = parse_request(orjson.dumps(body), "chat", None)
            call, result = await self.service.start(principal, view, request_id, time.perf_counter())
        except NovaError as err:
            await self._send_error(req_id, err.body()["error"])
            return
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                await self.send({"type": "done", "id": req_id, "usage": _usage(Outcome()), "cancelled": True})
            return
        if isinstance(result, Reply):
            await self._send_error(req_id, _reply_error(result))
            return
        streams.append(result)
        await self._relay(req_id, call, result)

    async def _relay(self, req_id: str, call: Call, stream: Stream) -> None:
        frames = _SseToFrames(req_id, self.send)
        try:
            await stream.pump(frames.write, self.settings)
        finally:
            self.service.finish(call, stream.outcome)
        o = stream.outcome
        with contextlib.suppress(OSError):
            if o.client_gone:
                if self.closing is None:  # cancelled by the client, the socket is still open
                    await self.send({"type": "done", "id": req_id, "usage": _usage(o), "cancelled": True})
            elif frames.error is not None or o.status != 200:
                await self._send_error(
                    req_id, frames.error or {"message": o.error or "error", "code": o.error}
                )
            else:
                await self.send(
                    {"type": "done", "id": req_id, "usage": _usage(o), "finish_reason": frames.finish_reason}
                )


def _loads(raw: str | bytes) -> dict[str, Any] | None:
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None


def _usage(o: Outcome) -> dict[str, int]:
    return {
        "prompt_tokens": o.prompt_tokens,
        "completion_tokens": o.completion_tokens,
        "total_tokens": o.prompt_tokens + o.completion_tokens,
    }


def _reply_error(reply: Reply) -> dict[str, Any]:
    try:
        parsed = orjson.loads(reply.body)
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict):
            return {**err, "status": reply.status}
    except orjson.JSONDecodeError:
        pass
    return {
        "message": f"Model server returned HTTP {reply.status}.",
        "code": "upstream_status",
        "status": reply.status,
    }


async def chat_socket(ws: WebSocket) -> None:
    await ChatSocket(ws).run()


routes = [WebSocketRoute("/v1/ws/chat", chat_socket)]
