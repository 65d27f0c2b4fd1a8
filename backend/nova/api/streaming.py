"""ASGI responses for the relay: an SSE stream that cancels upstream the moment the client
leaves, and a guard that does the same for non-streamed requests still waiting upstream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from nova.config import Settings
from nova.llm.relay import Outcome, Stream

T = TypeVar("T")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ClientGone(Exception):
    """The client disconnected while its request was still being served."""


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ``ClientGone``."""
    loop = asyncio.get_running_loop()
    gone = False
    scope: asyncio.Timeout | None = None

    def _on_disconnect(task: asyncio.Task[None]) -> None:
        nonlocal gone
        if task.cancelled() or task.exception() is not None or scope is None or scope.expired():
            return
        gone = True
        with contextlib.suppress(RuntimeError):
            scope.reschedule(loop.time())

    watcher = loop.create_task(_wait_disconnect(receive))
    watcher.add_done_callback(_on_disconnect)
    try:
        async with asyncio.timeout(None) as scope:
            return await work
    except TimeoutError:
        if gone:
            raise ClientGone from None
        raise
    finally:
        scope = None
        watcher.remove_done_callback(_on_disconnect)
        watcher.cancel()


class RelayStreamResponse(Response):
    """Sends the relayed SSE stream; ``on_done`` receives the outcome once it is over."""

    def __init__(
        self,
        stream: Stream,
        settings: Settings,
        headers: dict[str, str],
        on_done: Callable[[Outcome], None],
    ) -> None:
        self.status_code = 200
        self._stream = stream
        self._settings = settings
        self._extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._on_done = on_done
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self._stream
        loop = asyncio.get_running_loop()

        def _on_disconnect(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is None:
                stream.cancel()

        watcher = loop.create_task(_wait_disconnect(receive))
        watcher.add_done_callback(_on_disconnect)

        async def write(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + self._extra})
            await stream.pump(write, self._settings)
            if not stream.outcome.client_gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.remove_done_callback(_on_disconnect)
            watcher.cancel()
            self._on_done(stream.outcome)
