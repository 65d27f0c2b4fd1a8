"""Lua limit scripts over one pipelined Redis connection: the hot-path client of ``RedisAdmission``.

redis-py's asyncio client spends ~140 µs of CPU per ``EVALSHA`` sent through a pipeline (pool
checkout, command objects, reply handling in Python); at one gateway core that is a visible share
of a request. Here every call is written straight onto one persistent connection and replies are
matched in FIFO order by hiredis' C parser: ~10 µs of CPU and ~25 µs wall per call on localhost
(``scripts/bench_redis.py``). Calls made in the same loop tick leave in one write, so under load
N acquires cost one syscall and one Redis read.

Work that is not waited for (settling a finished request) is ``deferred``: it rides along with
the next acquire's write, or leaves within ``defer_seconds``. On this hardware a loopback
``send()`` costs more CPU than the script itself, so at low concurrency this halves the syscalls
per request (one write carries the previous request's settle and this request's acquire).

Only what the limiter needs: ``EVALSHA`` with ``NOSCRIPT`` recovery (load, then retry just that
call, so nothing runs twice), ``AUTH``/``SELECT`` from the URL, TCP, TLS (``rediss://``) and unix
sockets, a deadline per call (expiry closes the connection, as redis-py does on a socket timeout;
the next call reconnects), and replies whose caller gave up (cancelled or timed out) handed to
``on_orphan`` so an admission nobody waits for can be given back.

Errors are redis-py's (``ConnectionError``, ``TimeoutError``, ``ResponseError``: all ``RedisError``),
so callers handle them exactly as they would redis-py's.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

Orphan = Callable[[list[str], list[Any], Any], None]


def _pack(*parts: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        b = p if isinstance(p, bytes) else str(p).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


class _Script:
    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest().encode()


class _Call:
    __slots__ = ("args", "fut", "keys", "kind", "on_orphan", "retried", "script", "timer")

    def __init__(
        self,
        kind: str,
        keys: list[str],
        args: list[Any],
        fut: asyncio.Future[Any] | None,
        script: _Script | None = None,
        on_orphan: Orphan | None = None,
    ) -> None:
        self.kind = kind  # "eval": a caller waits; "load" / "setup": protocol housekeeping
        self.keys = keys
        self.args = args
        self.fut = fut
        self.script = script
        self.on_orphan = on_orphan
        self.retried = False
        self.timer: asyncio.TimerHandle | None = None


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedScripts) -> None:
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        self.owner._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._on_lost(self, exc)


class PipelinedScripts:
    """``call(name, keys, args)`` runs the named Lua script by SHA; returns a future of its reply."""

    def __init__(
        self,
        url: str,
        scripts: dict[str, str],
        *,
        timeout: float,
        connect_timeout: float,
        defer_seconds: float = 0.002,
    ) -> None:
        self._url = url
        self._opts: dict[str, Any] = parse_url(url)
        self._tls = urlsplit(url).scheme == "rediss"
        self._scripts = {name: _Script(source) for name, source in scripts.items()}
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._defer = defer_seconds
        self._waiters: deque[_Call] = deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._deferred_flush: asyncio.TimerHandle | None = None
        self._protocol: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._reader: Any = None
        self._connecting: asyncio.Task[None] | None = None
        self._closed = False

    # -- public ---------------------------------------------------------------------------------
    def call(
        self,
        name: str,
        keys: list[str],
        args: list[Any],
        *,
        on_orphan: Orphan | None = None,
        defer: bool = False,
    ) -> asyncio.Future[Any]:
        """``on_orphan(keys, args, reply)`` gets the reply if the caller gave up on it; ``defer``
        lets the call wait (at most ``defer_seconds``) for another write to ride along with."""
        if self._closed:
            raise RedisConnectionError("script runner closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        c = _Call("eval", keys, args, fut, self._scripts[name], on_orphan)
        self._enqueue(c, self._evalsha(c), defer)
        c.timer = loop.call_later(self._timeout + (self._defer if defer else 0.0), self._expire, c)
        if self._transport is None and self._connecting is None:
            self._connecting = loop.create_task(self._connect())
        return fut

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        self._drop_connection(RedisConnectionError("script runner closed"))

    # -- writing --------------------------------------------------------------------------------
    @staticmethod
    def _evalsha(c: _Call) -> bytes:
        assert c.script is not None
        return _pack(b"EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)

    def _enqueue(self, c: _Call, payload: bytes, defer: bool = False) -> None:
        self._waiters.append(c)
        self._out.append(payload)
        if self._flush_scheduled or self._transport is None:
            return
        if defer:
            if self._deferred_flush is None:
                self._deferred_flush = asyncio.get_running_loop().call_later(self._defer, self._flush)
            return
        self._flush_scheduled = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._deferred_flush is not None:
            self._deferred_flush.cancel()
            self._deferred_flush = None
        if self._transport is not None and self._out:
            data, self._out = b"".join(self._out), []
            self._transport.write(data)

    # -- connection -----------------------------------------------------------------------------
    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opts = self._opts
        try:
            if "path" in opts:
                coro = loop.create_unix_connection(lambda: _Protocol(self), opts["path"])
            else:
                coro = loop.create_connection(
                    lambda: _Protocol(self),
                    opts.get("host", "127.0.0.1"),
                    opts.get("port", 6379),
                    ssl=ssl.create_default_context() if self._tls else None,
                )
            transport, protocol = await asyncio.wait_for(coro, self._connect_timeout)
        except (OSError, TimeoutError) as exc:
            self._connecting = None
            self._fail_all(RedisConnectionError(f"cannot connect to Redis: {exc!r}"))
            return
        self._connecting = None
        if self._closed:
            transport.abort()
            return
        self._transport, self._protocol = transport, protocol
        self._reader = hiredis.Reader()
        setup: list[tuple[_Call, bytes]] = []
        if opts.get("password"):
            creds = [opts["username"], opts["password"]] if opts.get("username") else [opts["password"]]
            setup.append((_Call("setup", [], [], None), _pack(b"AUTH", *creds)))
        if opts.get("db"):
            setup.append((_Call("setup", [], [], None), _pack(b"SELECT", opts["db"])))
        self._waiters.extendleft(c for c, _ in reversed(setup))  # their replies come first
        self._out[:0] = [payload for _, payload in setup]
        self._flush()

    def _on_data(self, protocol: _Protocol, data: bytes) -> None:
        if protocol is not self._protocol:
            return
        self._reader.feed(data)
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            if not self._waiters:  # a reply nobody asked for: the stream is out of step
                self._drop_connection(RedisConnectionError("unexpected reply from Redis"))
                return
            self._deliver(self._waiters.popleft(), reply)

    def _deliver(self, c: _Call, reply: Any) -> None:
        if c.timer is not None:
            c.timer.cancel()
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            if c.kind == "setup":
                self._drop_connection(RedisConnectionError(f"Redis refused the connection setup: {message}"))
            elif (
                c.kind == "eval" and c.script is not None and message.startswith("NOSCRIPT") and not c.retried
            ):
                c.retried = True  # load the script, then run this call again (in order)
                self._enqueue(_Call("load", [], [], None), _pack(b"SCRIPT", b"LOAD", c.script.source))
                self._enqueue(c, self._evalsha(c))
                c.timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, c)
            elif c.fut is not None and not c.fut.done():
                c.fut.set_exception(ResponseError(message))
            return
        if c.kind != "eval" or c.fut is None:
            return
        if c.fut.done():  # the caller gave up after the script was sent: it still ran
            if c.on_orphan is not None:
                c.on_orphan(c.keys, c.args, reply)
        else:
            c.fut.set_result(reply)

    def _expire(self, c: _Call) -> None:
        if c.fut is not None and not c.fut.done():
            c.fut.set_exception(RedisTimeout("Timeout reading from Redis"))
        # Replies are matched by order: a connection that stopped answering cannot be trusted.
        self._drop_connection(RedisConnectionError("Redis did not answer in time"))

    def _drop_connection(self, exc: Exception) -> None:
        if self._deferred_flush is not None:
            self._deferred_flush.cancel()
            self._deferred_flush = None
        transport = self._transport
        self._transport = self._protocol = None
        self._reader = None
        if transport is not None:
            transport.abort()
        if self._connecting is None:  # calls queued for a connection still being made survive
            self._fail_all(exc)

    def _on_lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._drop_connection(RedisConnectionError(f"Redis connection lost: {exc!r}"))

    def _fail_all(self, exc: Exception) -> None:
        waiters, self._waiters = self._waiters, deque()
        self._out = []
        for c in waiters:
            if c.timer is not None:
                c.timer.cancel()
            if c.fut is not None and not c.fut.done():
                c.fut.set_exception(exc)
