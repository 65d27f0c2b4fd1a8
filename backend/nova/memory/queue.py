"""The durable write queue between the request path and the database ("nothing lost").

A message is accepted once it is in the queue: a Redis stream with a consumer group (shared by
gateway replicas; entries are deleted once applied) or, in the embedded default, an append-only
journal file with a checkpoint of what the database already has. The flusher applies entries in
order and acknowledges them only after the transaction commits, so a crash or a database outage
replays them (writes are idempotent upserts keyed by conversation + seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from nova.store.conversations import MessageWrite, SummaryWrite, Write

log = logging.getLogger("nova.memory")


def encode_write(w: Write) -> bytes:
    if isinstance(w, MessageWrite):
        return orjson.dumps(
            {
                "k": "m",
                "id": w.id,
                "c": w.conversation_id,
                "seq": w.seq,
                "role": w.role,
                "content": w.content,
                "tokens": w.tokens,
                "status": w.status,
                "error": w.error,
                "at": w.created_at.isoformat(),
            }
        )
    return orjson.dumps({"k": "s", "c": w.conversation_id, "summary": w.summary, "upto": w.upto_seq})


def decode_write(raw: bytes) -> Write:
    d: dict[str, Any] = orjson.loads(raw)
    if d["k"] == "s":
        return SummaryWrite(d["c"], d["summary"], int(d["upto"]))
    return MessageWrite(
        d["id"],
        d["c"],
        int(d["seq"]),
        d["role"],
        d["content"],
        int(d["tokens"]),
        d["status"],
        d["error"],
        datetime.fromisoformat(d["at"]),
    )


class WriteQueue(Protocol):
    async def start(self) -> None: ...

    async def append(self, writes: list[Write]) -> None:
        """Durable when it returns (raises when the queue itself is unavailable)."""
        ...

    async def read(self, max_items: int, block_seconds: float) -> list[tuple[str, Write]]:
        """Oldest unacknowledged entries not yet handed out (waits up to ``block_seconds``)."""
        ...

    async def ack(self, entries: list[tuple[str, Write]]) -> None:
        """The entries are in the database (or dead-lettered): remove them for good."""
        ...

    async def pending_for(self, conv_id: str) -> int:
        """Writes of one conversation not yet applied (a reload from the database waits for 0)."""
        ...

    async def dead_letter(self, write: Write, error: str) -> None:
        """Park a write the database refuses for good (kept, logged, never silently dropped)."""
        ...

    async def backlog(self) -> int:
        """Entries not yet applied to the database."""
        ...

    async def close(self) -> None: ...


_ACK = """
local n = tonumber(ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3, 2 + n))
redis.call('XDEL', KEYS[1], unpack(ARGV, 3, 2 + n))
for i = 3 + n, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[2], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return 1
"""


class RedisStreamQueue:
    GROUP = "flusher"

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        claim_idle_ms: int = 30_000,
        reader: aioredis.Redis | None = None,
    ) -> None:
        self._r = client  # appends: the request path's client (short socket timeout)
        self._reader = reader or client  # blocking reads need a timeout longer than the block
        self.stream = f"{namespace}:memory:writes"
        self._dead = f"{namespace}:memory:dead"
        self.pending_key = f"{namespace}:memory:pending"  # conversation -> writes not yet applied
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._ack = client.register_script(_ACK)
        self._claim_idle_ms = claim_idle_ms

    async def start(self) -> None:
        try:
            await self._r.xgroup_create(self.stream, self.GROUP, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def append(self, writes: list[Write]) -> None:
        async with self._r.pipeline(transaction=True) as p:  # all or nothing, in order
            for w in writes:
                p.xadd(self.stream, {"w": encode_write(w)})
            for conv_id, n in Counter(w.conversation_id for w in writes).items():
                p.hincrby(self.pending_key, conv_id, n)
            await p.execute()

    async def read(self, max_items: int, block_seconds: float) -> list[tuple[str, Write]]:
        # Entries a crashed replica took but never acknowledged come first.
        claimed: Any = await self._reader.xautoclaim(
            self.stream, self.GROUP, self._consumer, self._claim_idle_ms, "0-0", count=max_items
        )
        entries = claimed[1] if claimed else []
        if not entries:
            res: Any = await self._reader.xreadgroup(
                self.GROUP,
                self._consumer,
                {self.stream: ">"},
                count=max_items,
                block=max(1, int(block_seconds * 1000)),
            )
            entries = res[0][1] if res else []
        out: list[tuple[str, Write]] = []
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                continue
            w = decode_write(fields[b"w"])
            if b"seq" in fields and isinstance(w, MessageWrite):  # allocated by the session script
                w = replace(w, seq=int(fields[b"seq"]))
            out.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, w))
        return out

    async def ack(self, entries: list[tuple[str, Write]]) -> None:
        if not entries:
            return
        counts = Counter(w.conversation_id for _, w in entries)
        args: list[Any] = [self.GROUP, len(entries), *(i for i, _ in entries)]
        for conv_id, n in counts.items():
            args.extend((conv_id, n))
        await self._ack(keys=[self.stream, self.pending_key], args=args)

    async def pending_for(self, conv_id: str) -> int:
        return int(await self._r.hget(self.pending_key, conv_id) or 0)

    async def dead_letter(self, write: Write, error: str) -> None:
        await self._r.xadd(self._dead, {"w": encode_write(write), "error": error[:2000]})

    async def backlog(self) -> int:
        return int(await self._r.xlen(self.stream))

    async def close(self) -> None:
        if self._reader is not self._r:
            await self._reader.aclose()


def _ckpt_of(path: Path) -> Path:
    return path.with_name(path.name + ".ckpt")


def _lock(path: Path) -> Any:
    """The journal opened for appending and exclusively locked, or ``None`` when another live
    process (or instance) holds it; the lock ends with the process."""
    fh = path.open("ab")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def _unapplied(path: Path) -> list[bytes]:
    with path.open("rb") as f:
        f.seek(_read_ckpt(path, path.stat().st_size))
        return [line for line in f if line.strip() and line.endswith(b"\n")]


def _remove(path: Path) -> None:
    _ckpt_of(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def _read_ckpt(path: Path, size: int) -> int:
    acked = 0
    with contextlib.suppress(FileNotFoundError, ValueError):
        acked = int(_ckpt_of(path).read_text().strip() or 0)
    return 0 if acked > size else acked  # > size: crashed between checkpoint and truncation


class JournalQueue:
    """Append-only JSONL journal + checkpoint file (byte offset the database has applied).

    Appends are written and flushed to the OS before returning (a process crash loses nothing);
    once everything is applied the journal is truncated, so it stays small. Each journal has one
    owner (an exclusive lock); another instance on the same data directory takes the next name.
    """

    def __init__(self, path: Path, max_instances: int = 64) -> None:
        self.base = path
        self.path = path
        self._max = max_instances
        self._fh: Any = None
        self._read_pos = 0
        self._acked = 0
        self._pending = 0
        self._per_conv: Counter[str] = Counter()
        self._wake = asyncio.Event()

    @property
    def _ckpt(self) -> Path:
        return _ckpt_of(self.path)

    @property
    def _dead(self) -> Path:
        return self.path.with_name(self.path.name + ".dead")

    def _candidates(self) -> list[Path]:
        b = self.base
        return [b] + [b.with_name(f"{b.stem}-{i}{b.suffix}") for i in range(1, self._max)]

    async def start(self) -> None:
        """Own the first journal no other live process holds (``name``, ``name-1``...), then adopt
        the unapplied entries of journals whose process is gone, so nothing is stranded."""
        self.base.parent.mkdir(parents=True, exist_ok=True)
        for candidate in self._candidates():
            fh = _lock(candidate)
            if fh is not None:
                self.path, self._fh = candidate, fh
                break
        else:
            raise RuntimeError(f"all {self._max} journals {self.base}* are in use by other Nova processes")
        self._fh.seek(0, os.SEEK_END)
        size = self.path.stat().st_size
        acked = _read_ckpt(self.path, size)
        self._acked = self._read_pos = acked
        with self.path.open("rb") as f:
            f.seek(acked)
            for line in f:
                if line.strip():
                    self._pending += 1
                    self._per_conv[decode_write(line).conversation_id] += 1
        for other in self._candidates():
            if other != self.path and other.exists():
                await self._adopt(other)
        if self._pending:
            log.info("replaying %d queued conversation writes from %s", self._pending, self.path)
            self._wake.set()

    async def _adopt(self, other: Path) -> None:
        fh = _lock(other)
        if fh is None:  # a live process owns it
            return
        try:
            lines = _unapplied(other)
            if lines:
                await self.append([decode_write(line) for line in lines])
                log.info("adopted %d queued conversation writes from %s", len(lines), other)
            _remove(other)
        finally:
            fh.close()

    async def append(self, writes: list[Write]) -> None:
        data = b"".join(encode_write(w) + b"\n" for w in writes)
        self._fh.write(data)
        self._fh.flush()
        self._pending += len(writes)
        self._per_conv.update(w.conversation_id for w in writes)
        self._wake.set()

    async def read(self, max_items: int, block_seconds: float) -> list[tuple[str, Write]]:
        if self._read_pos >= self._fh.tell():
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), block_seconds)
        out: list[tuple[str, Write]] = []
        with self.path.open("rb") as f:
            f.seek(self._read_pos)
            while len(out) < max_items:
                line = f.readline()
                if not line.endswith(b"\n"):  # nothing more (or a line still being written)
                    break
                self._read_pos += len(line)
                if line.strip():
                    out.append((str(self._read_pos), decode_write(line)))
        return out

    async def ack(self, entries: list[tuple[str, Write]]) -> None:
        if not entries:
            return
        self._acked = max(self._acked, max(int(i) for i, _ in entries))
        self._pending = max(0, self._pending - len(entries))
        self._per_conv.subtract(w.conversation_id for _, w in entries)
        for conv_id in {w.conversation_id for _, w in entries}:
            if self._per_conv[conv_id] <= 0:
                del self._per_conv[conv_id]
        if self._acked >= self._fh.tell() and self._read_pos >= self._fh.tell():
            # Everything applied: checkpoint 0 first, then truncate (a crash in between only
            # replays idempotent writes).
            self._write_ckpt(0)
            self._fh.truncate(0)
            self._fh.seek(0)
            self._acked = self._read_pos = 0
            self._pending = 0
            self._per_conv.clear()
        else:
            self._write_ckpt(self._acked)

    def _write_ckpt(self, pos: int) -> None:
        tmp = self._ckpt.with_name(self._ckpt.name + ".tmp")
        tmp.write_text(str(pos))
        os.replace(tmp, self._ckpt)

    async def dead_letter(self, write: Write, error: str) -> None:
        with self._dead.open("ab") as f:
            f.write(orjson.dumps({"write": orjson.loads(encode_write(write)), "error": error[:2000]}) + b"\n")

    async def backlog(self) -> int:
        return self._pending

    async def pending_for(self, conv_id: str) -> int:
        return self._per_conv.get(conv_id, 0)

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
