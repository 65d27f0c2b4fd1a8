"""A fake vLLM OpenAI server: a real HTTP server on a random port with scripted behaviour.

Each request takes the next behaviour from ``script`` (default ``Behavior()``: a normal answer).
The server records every request and counts cancellations (client closed the connection before
the response finished), so tests can prove the gateway cancels upstream work.

Run standalone (for the Prometheus/deploy tests and manual checks):
    python -m tests.fakes.upstream --port 18001
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Mode = Literal["ok", "status", "reset", "hang", "hang_after", "garbage"]


@dataclass
class Behavior:
    mode: Mode = "ok"
    tokens: int = 8
    ttft: float = 0.0  # seconds before the first chunk (or the whole non-stream answer)
    itl: float = 0.0  # seconds between chunks
    status: int = 500  # for mode="status"
    after: int = 3  # chunks sent before "reset"/"hang_after"
    retry_after: str | None = None


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Stats:
    requests: int = 0
    running: int = 0
    cancelled: int = 0
    completed: int = 0
    recorded: list[Recorded] = field(default_factory=list)


def token_text(i: int) -> str:
    return f"t{i} "


def count_tokens(body: dict[str, Any]) -> int:
    if "messages" in body:
        text = " ".join(str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict))
    else:
        p = body.get("prompt", "")
        text = p if isinstance(p, str) else " ".join(map(str, p))
    return max(1, len(text.split()))


class FakeUpstream:
    def __init__(self, model: str = "fake-model", port: int = 0, context_window: int = 4096) -> None:
        self.model = model
        self.context_window = context_window
        self.script: deque[Behavior] = deque()
        self.default = Behavior()
        self.healthy = True
        self.stats = Stats()
        self._ids = itertools.count(1)
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self.port = 0

    # -- lifecycle (own thread and loop, so sync clients in tests never block it) --------
    def start(self) -> FakeUpstream:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self, sock: socket.socket) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_post("/v1/completions", self._complete)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.SockSite(self._runner, sock)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *behaviors: Behavior) -> None:
        self.script.extend(behaviors)

    def reset(self) -> None:
        self.script.clear()
        self.default = Behavior()
        self.healthy = True
        self.stats = Stats()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats.running == 0:
                return True
            time.sleep(0.01)
        return False

    # -- handlers ------------------------------------------------------------------------
    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _models(self, _: web.Request) -> web.Response:
        data = [
            {"id": self.model, "object": "model", "owned_by": "vllm", "max_model_len": self.context_window}
        ]
        return web.json_response({"object": "list", "data": data})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = count_tokens(body)
        return web.json_response({"count": n, "max_model_len": self.context_window, "tokens": list(range(n))})

    async def _metrics(self, _: web.Request) -> web.Response:
        text = (
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="{self.model}"}} {self.stats.running}\n'
        )
        return web.Response(text=text, content_type="text/plain")

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self.stats.requests += 1
        self.stats.recorded.append(
            Recorded(request.path, body, {k.lower(): v for k, v in request.headers.items()})
        )
        b = self.script.popleft() if self.script else self.default
        self.stats.running += 1
        try:
            return await self._answer(request, body, b)
        except (asyncio.CancelledError, ConnectionResetError):
            self.stats.cancelled += 1
            raise
        finally:
            self.stats.running -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any], b: Behavior) -> web.StreamResponse:
        chat = request.path.endswith("/chat/completions")
        if b.mode == "status":
            headers = {"Retry-After": b.retry_after} if b.retry_after else None
            err = {"error": {"message": f"scripted {b.status}", "type": "server_error", "code": b.status}}
            return web.json_response(err, status=b.status, headers=headers)
        if b.mode == "hang":
            await asyncio.sleep(3600)
        if b.mode == "garbage":
            return web.Response(body=b"not json", content_type="application/json")
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{next(self._ids)}"
        created = int(time.time())
        model = body.get("model", self.model)
        n_choices = int(body.get("n") or 1)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        n_tokens = min(b.tokens, int(limit)) if limit else b.tokens
        ptoks = count_tokens(body)
        usage = {
            "prompt_tokens": ptoks,
            "completion_tokens": n_tokens * n_choices,
            "total_tokens": ptoks + n_tokens * n_choices,
        }
        tool_call = chat and bool(body.get("tools")) and body.get("tool_choice") != "none"
        if b.ttft:
            await asyncio.sleep(b.ttft)
        if not body.get("stream"):
            text = "".join(token_text(i) for i in range(n_tokens))
            choices: list[dict[str, Any]] = []
            for idx in range(n_choices):
                if chat:
                    msg: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text}
                    if tool_call:
                        fn = body["tools"][0]["function"]["name"]
                        msg["tool_calls"] = [
                            {
                                "id": f"call_{idx}",
                                "type": "function",
                                "function": {"name": fn, "arguments": '{"city": "Paris"}'},
                            }
                        ]
                    choices.append(
                        {
                            "index": idx,
                            "message": msg,
                            "logprobs": None,
                            "finish_reason": "tool_calls" if tool_call else "stop",
                        }
                    )
                else:
                    choices.append({"index": idx, "text": text, "logprobs": None, "finish_reason": "stop"})
            self.stats.completed += 1
            return web.json_response(
                {
                    "id": rid,
                    "object": "chat.completion" if chat else "text_completion",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> bytes:
            payload = {"id": rid, "object": obj, "created": created, "model": model, "choices": choices}
            if extra:
                payload.update(extra)
            return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

        if chat:
            await resp.write(
                event(
                    [
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                        for i in range(n_choices)
                    ]
                )
            )
        for i in range(n_tokens):
            if b.mode in ("reset", "hang_after") and i == b.after:
                if b.mode == "hang_after":
                    await asyncio.sleep(3600)
                assert request.transport is not None
                request.transport.abort()
                return resp
            if i and b.itl:
                await asyncio.sleep(b.itl)
            for c in range(n_choices):
                piece = (
                    {"index": c, "delta": {"content": token_text(i)}, "logprobs": None, "finish_reason": None}
                    if chat
                    else {"index": c, "text": token_text(i), "logprobs": None, "finish_reason": None}
                )
                await resp.write(event([piece]))
        last = [
            {"index": c, "delta": {}, "logprobs": None, "finish_reason": "stop"}
            if chat
            else {"index": c, "text": "", "logprobs": None, "finish_reason": "stop"}
            for c in range(n_choices)
        ]
        await resp.write(event(last))
        so = body.get("stream_options") or {}
        if so.get("include_usage"):
            await resp.write(event([], {"usage": usage}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        self.stats.completed += 1
        return resp


def main() -> None:
    parser = argparse.ArgumentParser(description="fake vLLM OpenAI server")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--itl", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeUpstream(args.model, args.port)
    fake.default = Behavior(tokens=args.tokens, itl=args.itl)
    fake.start()
    print(f"fake upstream on {fake.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
