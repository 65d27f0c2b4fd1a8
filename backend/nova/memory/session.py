"""Session memory: the recent window of each conversation, with token counts, next to the gateway.

Two backends with one contract: Redis (shared by every gateway replica; one Lua script per
operation, so each is one round trip and atomic) and in-process (embedded default; an LRU bounded
by ``memory_local_max_conversations``). Entries expire ``memory_ttl_seconds`` after last use and
are re-seeded from the database on a miss. Sequence numbers are allocated here, atomically, so
messages are ordered before they reach the database.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from nova.limits.scripts import PipelinedScripts
from nova.memory.messages import StoredMessage


@dataclass(slots=True)
class Session:
    conversation_id: str
    user_id: str
    last_seq: int  # highest sequence number allocated (stored or reserved)
    messages: list[StoredMessage] = field(default_factory=list)  # the window, by seq
    summary: str | None = None
    summary_upto: int = 0
    summary_tokens: int = 0


class SessionStore(Protocol):
    async def get(self, conv_id: str, budget: int | None = None, overhead: int = 0) -> Session | None:
        """The session (refreshing its TTL), or ``None`` on a miss.

        With ``budget``, only the newest messages assembly could use: whole turns, newest first,
        until their cost (``tokens + overhead``, errors free) exceeds ``budget`` — so the work
        per request does not grow with the conversation."""
        ...

    async def seed(self, session: Session) -> None:
        """Install a session loaded from the database unless one appeared meanwhile."""
        ...

    async def append(self, conv_id: str, messages: list[StoredMessage], reserve: int) -> int | None:
        """Allocate seqs for ``messages`` (their ``seq`` is ignored) plus ``reserve`` more, store the
        messages; returns the first seq allocated, or ``None`` when the session is not present."""
        ...

    async def put(self, conv_id: str, message: StoredMessage) -> bool:
        """Store (or replace) the message at its seq; ``False`` when the session is not present."""
        ...

    async def remove(self, conv_id: str, seqs: list[int]) -> None: ...

    async def set_summary(self, conv_id: str, summary: str, upto: int, tokens: int) -> None: ...

    async def delete(self, conv_id: str) -> None: ...

    async def close(self) -> None: ...


# -- in-process ----------------------------------------------------------------------------
class LocalSessionStore:
    def __init__(self, ttl: float, window: int, max_conversations: int) -> None:
        self._ttl = ttl
        self._window = window
        self._max = max_conversations
        self._data: OrderedDict[str, tuple[Session, float]] = OrderedDict()

    def _live(self, conv_id: str) -> Session | None:
        entry = self._data.get(conv_id)
        if entry is None:
            return None
        session, expires = entry
        now = time.monotonic()
        if expires <= now:
            del self._data[conv_id]
            return None
        self._data[conv_id] = (session, now + self._ttl)
        self._data.move_to_end(conv_id)
        return session

    def _trim(self, session: Session) -> None:
        if len(session.messages) > self._window:
            del session.messages[: len(session.messages) - self._window]

    async def get(self, conv_id: str, budget: int | None = None, overhead: int = 0) -> Session | None:
        s = self._live(conv_id)
        if s is None:
            return None
        return replace(s, messages=within_budget(s.messages, budget, overhead))

    async def seed(self, session: Session) -> None:
        if self._live(session.conversation_id) is not None:
            return
        s = replace(session, messages=sorted(session.messages, key=lambda m: m.seq))
        self._trim(s)
        self._data[s.conversation_id] = (s, time.monotonic() + self._ttl)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def append(self, conv_id: str, messages: list[StoredMessage], reserve: int) -> int | None:
        s = self._live(conv_id)
        if s is None:
            return None
        first = s.last_seq + 1
        s.messages.extend(replace(m, seq=first + i) for i, m in enumerate(messages))
        s.last_seq += len(messages) + reserve
        self._trim(s)
        return first

    async def put(self, conv_id: str, message: StoredMessage) -> bool:
        s = self._live(conv_id)
        if s is None:
            return False
        kept = [m for m in s.messages if m.seq != message.seq]
        kept.append(message)
        kept.sort(key=lambda m: m.seq)
        s.messages = kept
        s.last_seq = max(s.last_seq, message.seq)
        self._trim(s)
        return True

    async def remove(self, conv_id: str, seqs: list[int]) -> None:
        s = self._live(conv_id)
        if s is not None:
            drop = set(seqs)
            s.messages = [m for m in s.messages if m.seq not in drop]

    async def set_summary(self, conv_id: str, summary: str, upto: int, tokens: int) -> None:
        s = self._live(conv_id)
        if s is not None and upto >= s.summary_upto:
            s.summary, s.summary_upto, s.summary_tokens = summary, upto, tokens

    async def delete(self, conv_id: str) -> None:
        self._data.pop(conv_id, None)

    async def close(self) -> None:
        self._data.clear()


# -- Redis ---------------------------------------------------------------------------------
# Window members are "<seq>:<json [role, content, tokens, status]>" scored by seq.
# Members are "<seq>:<json [role, status, tokens, content]>" (content last: the script reads the
# fields before it with one pattern). With a budget (ARGV[2] >= 0) it returns only the newest
# whole turns until their cost exceeds the budget, oldest first.
_GET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local meta = redis.call('HGETALL', KEYS[1])
local budget = tonumber(ARGV[2])
if budget < 0 then return {meta, redis.call('ZRANGE', KEYS[2], 0, -1)} end
local overhead = tonumber(ARGV[3])
local out, used, start = {}, 0, 0
while true do
  local page = redis.call('ZREVRANGE', KEYS[2], start, start + 31)
  if #page == 0 then break end
  for _, m in ipairs(page) do
    table.insert(out, 1, m)
    local role, status, tokens = string.match(m, '^%d+:%["(%a+)","(%a+)",(%d+),')
    if status ~= 'error' and tonumber(tokens) > 0 then used = used + tonumber(tokens) + overhead end
    if used > budget and role == 'user' then return {meta, out} end
  end
  start = start + 32
end
return {meta, out}
"""
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
local nmeta = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + nmeta))
for i = 4 + nmeta, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local n = #ARGV - 3
local last = redis.call('HINCRBY', KEYS[1], 'last_seq', n + tonumber(ARGV[3]))
local first = last - n - tonumber(ARGV[3]) + 1
for i = 1, n do
  local seq = first + i - 1
  redis.call('ZADD', KEYS[2], seq, seq .. ':' .. ARGV[3 + i])
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return first
"""
# The same plus one stream entry per message (the durable write queue), in one round trip:
# the write's seq is only known here, so it travels as its own field.
_APPEND_QUEUED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local n = tonumber(ARGV[4])
local last = redis.call('HINCRBY', KEYS[1], 'last_seq', n + tonumber(ARGV[3]))
local first = last - n - tonumber(ARGV[3]) + 1
for i = 1, n do
  local seq = first + i - 1
  redis.call('ZADD', KEYS[2], seq, seq .. ':' .. ARGV[4 + i])
  redis.call('XADD', KEYS[3], '*', 'w', ARGV[4 + n + i], 'seq', seq)
end
redis.call('HINCRBY', KEYS[4], ARGV[5 + 2 * n], n)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return first
"""
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local seq = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], seq, seq)
redis.call('ZADD', KEYS[2], seq, seq .. ':' .. ARGV[4])
if tonumber(redis.call('HGET', KEYS[1], 'last_seq') or '0') < seq then
  redis.call('HSET', KEYS[1], 'last_seq', seq)
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""
_SUMMARY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'summary_upto') or '0') > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'summary', ARGV[1], 'summary_upto', ARGV[2], 'summary_tokens', ARGV[3])
return 1
"""


def _payload(m: StoredMessage) -> bytes:
    return orjson.dumps([m.role, m.status, m.tokens, m.content])


def _member(raw: bytes) -> StoredMessage:
    seq, _, payload = raw.partition(b":")
    role, status, tokens, content = orjson.loads(payload)
    return StoredMessage(int(seq), role, content, int(tokens), status)


def within_budget(messages: list[StoredMessage], budget: int | None, overhead: int) -> list[StoredMessage]:
    """The newest whole turns until their cost exceeds ``budget`` (all with ``None``)."""
    if budget is None:
        return list(messages)
    used = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.status != "error" and m.tokens > 0:
            used += m.tokens + overhead
        if used > budget and m.role == "user":
            return messages[i:]
    return list(messages)


class RedisSessionStore:
    """The window's scripts run over one pipelined connection (``PipelinedScripts``, as the rate
    limits do): a ``get`` + ``append_queued`` pair on the request path costs ~0.1 ms of CPU less
    than through redis-py's ``Script`` objects. ``client`` serves the plain commands."""

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        ttl: float,
        window: int,
        *,
        url: str,
        timeout: float,
        owns_client: bool = False,
    ) -> None:
        self._r = client
        self._ns = namespace
        self._ttl_ms = str(int(ttl * 1000))
        self._window = str(window)
        self._owns = owns_client
        self._scripts = PipelinedScripts(
            url,
            {
                "get": _GET,
                "seed": _SEED,
                "append": _APPEND,
                "append_queued": _APPEND_QUEUED,
                "put": _PUT,
                "summary": _SUMMARY,
            },
            timeout=timeout,
            connect_timeout=max(timeout, 1.0),
        )

    def _keys(self, conv_id: str) -> list[str]:
        base = f"{self._ns}:conv:{{{conv_id}}}"
        return [base + ":meta", base + ":win"]

    async def get(self, conv_id: str, budget: int | None = None, overhead: int = 0) -> Session | None:
        args: list[Any] = [self._ttl_ms, -1 if budget is None else max(0, budget), overhead]
        res: Any = await self._scripts.call("get", self._keys(conv_id), args)
        if not res:
            return None
        flat, members = res
        meta = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
        summary = meta.get("summary")
        return Session(
            conversation_id=conv_id,
            user_id=meta["user_id"],
            last_seq=int(meta.get("last_seq", 0)),
            messages=[_member(m) for m in members],
            summary=summary or None,
            summary_upto=int(meta.get("summary_upto", 0)),
            summary_tokens=int(meta.get("summary_tokens", 0)),
        )

    async def seed(self, session: Session) -> None:
        meta = [
            "user_id", session.user_id,
            "last_seq", str(session.last_seq),
            "summary", session.summary or "",
            "summary_upto", str(session.summary_upto),
            "summary_tokens", str(session.summary_tokens),
        ]  # fmt: skip
        args: list[Any] = [self._ttl_ms, self._window, str(len(meta)), *meta]
        for m in session.messages:
            args.extend((m.seq, f"{m.seq}:".encode() + _payload(m)))
        await self._scripts.call("seed", self._keys(session.conversation_id), args)

    async def append(self, conv_id: str, messages: list[StoredMessage], reserve: int) -> int | None:
        args: list[Any] = [self._ttl_ms, self._window, str(reserve), *(_payload(m) for m in messages)]
        first = await self._scripts.call("append", self._keys(conv_id), args)
        return None if first is None else int(first)

    async def append_queued(
        self,
        conv_id: str,
        messages: list[StoredMessage],
        reserve: int,
        stream: str,
        pending_key: str,
        writes: list[bytes],
    ) -> int | None:
        """``append`` that also adds ``writes`` (one per message, seq filled in by Redis) to the
        queue's stream atomically: one round trip instead of two on the request path."""
        args: list[Any] = [self._ttl_ms, self._window, str(reserve), str(len(messages))]
        args.extend(_payload(m) for m in messages)
        args.extend(writes)
        args.append(conv_id)
        first = await self._scripts.call("append_queued", [*self._keys(conv_id), stream, pending_key], args)
        return None if first is None else int(first)

    async def put(self, conv_id: str, message: StoredMessage) -> bool:
        args: list[Any] = [self._ttl_ms, self._window, str(message.seq), _payload(message)]
        return bool(await self._scripts.call("put", self._keys(conv_id), args))

    async def remove(self, conv_id: str, seqs: list[int]) -> None:
        win = self._keys(conv_id)[1]
        async with self._r.pipeline(transaction=False) as p:
            for seq in seqs:
                p.zremrangebyscore(win, seq, seq)
            await p.execute()

    async def set_summary(self, conv_id: str, summary: str, upto: int, tokens: int) -> None:
        await self._scripts.call("summary", self._keys(conv_id)[:1], [summary, str(upto), str(tokens)])

    async def delete(self, conv_id: str) -> None:
        await self._r.delete(*self._keys(conv_id))

    async def close(self) -> None:
        await self._scripts.aclose()
        if self._owns:
            await self._r.aclose()
