"""``ConversationMemory``: the ``ChatMemory`` the completion service calls for ``conversation_id``.

``prepare`` (request path): check ownership, count the new messages (upstream tokenizer, in
parallel with loading the session), assemble the history that fits, store the user's messages
durably (write queue) and only then let the relay call the model. ``complete`` (after the
response): store the assistant's answer — complete, partial after a disconnect, or the error — in
a background task that never raises. Optionally summarizes turns that stopped fitting.

The client sends only the new turn: system messages in the request are the system prompt for
this call (not stored); user/assistant messages are appended to the conversation.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from redis.exceptions import RedisError

from nova.config import Settings
from nova.errors import BadRequest, NotFound, NovaError, ServiceUnavailable
from nova.identity.principal import Principal
from nova.llm.pool import UpstreamPool
from nova.llm.protocol import RequestView
from nova.llm.relay import Outcome
from nova.memory.assembly import SUMMARY_PREFIX, Budget, assemble
from nova.memory.flusher import Flusher
from nova.memory.messages import STORED_ROLES, StoredMessage, message_text
from nova.memory.queue import RedisStreamQueue, WriteQueue, encode_write
from nova.memory.session import RedisSessionStore, Session, SessionStore
from nova.memory.tokens import TokenCounter, pick_deployment
from nova.observability import metrics
from nova.store.base import new_id, utcnow
from nova.store.conversations import ConversationRepository, MessageWrite, SummaryWrite, Write
from nova.store.db import Database

log = logging.getLogger("nova.memory")

CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SYSTEM_ROLES = frozenset({"system", "developer"})
_SUMMARIZE_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Rewrite the summary so it covers the previous summary and the new messages: keep facts, names, "
    "numbers, decisions and open questions; be concise; write only the summary."
)


def not_found(conv_id: str) -> NotFound:
    return NotFound(f"No conversation {conv_id!r}.", param="conversation_id", code="conversation_not_found")


@dataclass(slots=True)
class Turn:
    conversation_id: str
    user_id: str
    model: str
    assistant_seq: int
    dropped_upto: int
    summary_upto: int
    prepare_seconds: float


class ConversationMemory:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: SessionStore,
        queue: WriteQueue,
        flusher: Flusher,
        counter: TokenCounter,
        pool: UpstreamPool | None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.queue = queue
        self.flusher = flusher
        self.counter = counter
        self.pool = pool
        self._background: set[asyncio.Task[None]] = set()
        self._storing: dict[str, set[asyncio.Task[None]]] = {}  # answers being stored, per conversation
        self._summarizing: set[str] = set()

    # -- sessions -----------------------------------------------------------------------------
    async def session(self, conv_id: str, model: str = "", budget: int | None = None) -> Session:
        """The conversation's session from memory, or loaded from the database on a miss; with
        ``budget`` only the recent turns that could fit it (see ``SessionStore.get``)."""
        overhead = self.settings.memory_message_overhead_tokens
        try:
            cached = await self.store.get(conv_id, budget, overhead)
        except RedisError as err:
            raise ServiceUnavailable("Conversation memory (Redis) is unavailable.") from err
        if cached is not None:
            return cached
        return await self._load(conv_id, model, budget)

    async def _load(self, conv_id: str, model: str = "", budget: int | None = None) -> Session:
        # Writes of this conversation still queued would be missing from what the database returns
        # (and its sequence numbers would be handed out again): wait for them, or refuse.
        try:
            caught_up = await self.flusher.wait_caught_up(2.0, conv_id)
        except Exception as err:
            raise ServiceUnavailable("Conversation memory is unavailable; retry shortly.") from err
        if not caught_up:
            raise ServiceUnavailable(
                "This conversation is still being saved; retry shortly.", headers={"Retry-After": "1"}
            )
        try:
            async with self.db.session() as s:
                repo = ConversationRepository(s)
                conv = await repo.get(conv_id)
                if conv is None:
                    raise not_found(conv_id)
                rows = await repo.recent(conv_id, self.settings.memory_window_messages)
                last_seq = await repo.max_seq(conv_id)
        except NovaError:
            raise
        except Exception as err:
            raise ServiceUnavailable("The conversation store is unavailable; retry shortly.") from err
        summary_tokens = 0
        if conv.summary:
            summary_tokens = (
                await self.counter.count(model or conv.model or "", [SUMMARY_PREFIX + conv.summary])
            )[0]
        session = Session(
            conversation_id=conv_id,
            user_id=conv.user_id,
            last_seq=last_seq,
            messages=[StoredMessage(r.seq, r.role, r.content, r.tokens, r.status) for r in rows],
            summary=conv.summary,
            summary_upto=conv.summary_upto_seq,
            summary_tokens=summary_tokens,
        )
        try:
            await self.store.seed(session)
            got = await self.store.get(conv_id, budget, self.settings.memory_message_overhead_tokens)
            return got or session
        except RedisError as err:
            raise ServiceUnavailable("Conversation memory (Redis) is unavailable.") from err

    # -- ChatMemory ---------------------------------------------------------------------------
    async def prepare(
        self, principal: Principal, view: RequestView, model: str, context_window: int | None
    ) -> Turn:
        started = time.perf_counter()
        conv_id = view.conversation_id or ""
        if view.route != "chat":
            raise BadRequest("conversation_id works with chat completions only.", param="conversation_id")
        if not CONVERSATION_ID.fullmatch(conv_id):
            raise not_found(conv_id)
        system: list[tuple[str, str]] = []
        new: list[tuple[str, str]] = []
        for i, m in enumerate(view.body["messages"]):
            role = m.get("role")
            if role in _SYSTEM_ROLES:
                system.append((str(role), message_text(m, i)))
            elif role in STORED_ROLES:
                new.append((str(role), message_text(m, i)))
            else:
                raise BadRequest(
                    f"Role {role!r} cannot be used with conversation_id (user, assistant, system).",
                    param=f"messages[{i}].role",
                )
        if not new:
            raise BadRequest("A conversation turn needs at least one user message.", param="messages")
        storing = self._storing.get(conv_id)
        if storing:  # the previous answer is still being stored: it is part of the history
            await asyncio.wait(list(storing), timeout=2.0)
        texts = [t for _, t in system] + [t for _, t in new]
        budget = Budget(
            context_window or self.settings.memory_default_context_window,
            view.max_tokens or self.settings.memory_default_max_tokens,
            self.settings.memory_message_overhead_tokens,
        )
        session, counts = await asyncio.gather(
            self.session(conv_id, model, budget.available), self.counter.count(model, texts)
        )
        if session.user_id != principal.user_id:
            raise not_found(conv_id)
        sys_msgs = [StoredMessage(0, r, t, n) for (r, t), n in zip(system, counts, strict=False)]
        new_msgs = [StoredMessage(0, r, t, n) for (r, t), n in zip(new, counts[len(system) :], strict=True)]
        summary = None
        if session.summary:
            summary = StoredMessage(0, "system", SUMMARY_PREFIX + session.summary, session.summary_tokens)
        assembled = assemble(sys_msgs, session.messages, new_msgs, budget, summary)
        first = await self._store_new(conv_id, new_msgs)
        view.body["messages"] = assembled.messages
        view.modified = True
        elapsed = time.perf_counter() - started
        metrics.MEMORY_ASSEMBLY.observe(elapsed)
        return Turn(
            conv_id,
            principal.user_id,
            model,
            first + len(new_msgs),
            assembled.dropped_upto_seq,
            session.summary_upto,
            elapsed,
        )

    async def _store_new(self, conv_id: str, messages: list[StoredMessage]) -> int:
        """Allocate seqs (one more reserved for the answer), add the messages to the window and
        queue them durably; returns the first seq. Raises 503 when that is not possible."""
        now = utcnow()
        ids = [new_id() for _ in messages]
        fused = isinstance(self.store, RedisSessionStore) and isinstance(self.queue, RedisStreamQueue)
        for _attempt in range(2):
            try:
                if fused:
                    assert isinstance(self.store, RedisSessionStore) and isinstance(
                        self.queue, RedisStreamQueue
                    )
                    pending = [
                        encode_write(
                            MessageWrite(i, conv_id, 0, m.role, m.content, m.tokens, "complete", None, now)
                        )
                        for i, m in zip(ids, messages, strict=True)
                    ]
                    q = self.queue
                    first = await self.store.append_queued(
                        conv_id, messages, 1, q.stream, q.pending_key, pending
                    )
                else:
                    first = await self.store.append(conv_id, messages, reserve=1)
            except RedisError as err:
                raise ServiceUnavailable("Conversation memory (Redis) is unavailable.") from err
            if first is not None:
                break
            await self._load(conv_id, "")  # evicted between load and append: reload and retry once
        else:
            raise ServiceUnavailable("Conversation memory is under pressure; retry shortly.")
        if not fused:
            writes: list[Write] = [
                MessageWrite(i, conv_id, first + n, m.role, m.content, m.tokens, "complete", None, now)
                for n, (i, m) in enumerate(zip(ids, messages, strict=True))
            ]
            try:
                await self.queue.append(writes)
            except Exception as err:
                await self._forget(conv_id, [w.seq for w in writes if isinstance(w, MessageWrite)])
                raise ServiceUnavailable(
                    "Conversation storage is unavailable; the message was not sent."
                ) from err
        return first

    async def _forget(self, conv_id: str, seqs: list[int]) -> None:
        try:
            await self.store.remove(conv_id, seqs)
        except Exception:
            log.warning("could not roll back unsent messages from session memory", exc_info=True)

    def complete(self, turn: Turn, outcome: Outcome) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._store_answer(turn, outcome))
        except Exception:
            log.exception("could not schedule storing the assistant message")
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        pending = self._storing.setdefault(turn.conversation_id, set())
        pending.add(task)
        task.add_done_callback(lambda t: self._stored(turn.conversation_id, t))

    def _stored(self, conv_id: str, task: asyncio.Task[None]) -> None:
        pending = self._storing.get(conv_id)
        if pending is not None:
            pending.discard(task)
            if not pending:
                del self._storing[conv_id]

    async def _store_answer(self, turn: Turn, outcome: Outcome) -> None:
        try:
            content = "".join(outcome.content)
            if outcome.client_gone:
                status, error = "partial", "client_disconnected"
            elif outcome.status == 200 and outcome.complete:
                status, error = "complete", None
            elif outcome.status == 200:
                status, error = "partial", "incomplete"
            else:
                status, error = "error", outcome.error or f"http_{outcome.status}"
            tokens = (await self.counter.count(turn.model, [content]))[0] if content else 0
            msg = StoredMessage(turn.assistant_seq, "assistant", content, tokens, status)
            write = MessageWrite(
                new_id(), turn.conversation_id, msg.seq, "assistant", content, tokens, status, error, utcnow()
            )
            await self._enqueue_reliably([write])
            try:
                await self.store.put(turn.conversation_id, msg)
            except Exception:  # the database has it; the next miss reloads
                log.warning("session memory update failed", exc_info=True)
            if (
                self.settings.memory_summarize
                and turn.dropped_upto > turn.summary_upto
                and turn.conversation_id not in self._summarizing
            ):
                self._summarizing.add(turn.conversation_id)
                task = asyncio.get_running_loop().create_task(self._summarize_guarded(turn))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        except Exception:
            log.exception(
                "storing the assistant message failed", extra={"conversation": turn.conversation_id}
            )

    async def _enqueue_reliably(self, writes: list[Write]) -> None:
        """The queue, else straight to the database, retried with backoff while both are down."""
        delay = 0.05
        for attempt in range(12):
            try:
                await self.queue.append(writes)
                return
            except Exception:
                try:
                    async with self.db.session() as s, s.begin():
                        await ConversationRepository(s).apply(writes)
                    return
                except Exception:
                    if attempt == 11:
                        raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # -- summaries ----------------------------------------------------------------------------
    async def _summarize_guarded(self, turn: Turn) -> None:
        try:
            await self._summarize(turn)
        except Exception:
            log.exception("summarizing failed", extra={"conversation": turn.conversation_id})
        finally:
            self._summarizing.discard(turn.conversation_id)

    async def _summarize(self, turn: Turn) -> None:
        session = await self.session(turn.conversation_id)
        lo, hi = session.summary_upto, turn.dropped_upto
        span = [m for m in session.messages if lo < m.seq <= hi]
        if not span or span[0].seq > lo + 1:  # not all in the window: read them from the database
            await self.flusher.wait_caught_up(5.0, turn.conversation_id)
            async with self.db.session() as s:
                rows = await ConversationRepository(s).messages(turn.conversation_id, lo, hi)
            span = [StoredMessage(r.seq, r.role, r.content, r.tokens, r.status) for r in rows]
        span = [m for m in span if m.status != "error" and m.content]
        if not span:
            return
        room = self.settings.memory_default_context_window - 2 * self.settings.memory_summary_max_tokens
        kept: list[StoredMessage] = []
        used = session.summary_tokens
        for m in reversed(span):  # the newest dropped messages first when they cannot all fit
            if used + m.tokens + self.settings.memory_message_overhead_tokens > room:
                break
            kept.append(m)
            used += m.tokens + self.settings.memory_message_overhead_tokens
        kept.reverse()
        transcript = "\n".join(f"{m.role}: {m.content}" for m in kept)
        previous = f"Previous summary:\n{session.summary}\n\n" if session.summary else ""
        text = await self._ask_model(
            turn.model,
            [
                {"role": "system", "content": _SUMMARIZE_INSTRUCTIONS},
                {"role": "user", "content": f"{previous}New messages:\n{transcript}"},
            ],
        )
        if not text:
            return
        tokens = (await self.counter.count(turn.model, [SUMMARY_PREFIX + text]))[0]
        await self._enqueue_reliably([SummaryWrite(turn.conversation_id, text, hi)])
        await self.store.set_summary(turn.conversation_id, text, hi, tokens)
        log.info("conversation summarized", extra={"conversation": turn.conversation_id, "upto": hi})

    async def _ask_model(self, model: str, messages: list[dict[str, Any]]) -> str | None:
        dep = pick_deployment(self.pool, model)
        if dep is None:
            return None
        up = dep.upstream
        body = orjson.dumps(
            {
                "model": dep.upstream_model,
                "messages": messages,
                "max_tokens": self.settings.memory_summary_max_tokens,
                "stream": False,
            }
        )
        timeout = aiohttp.ClientTimeout(total=self.settings.upstream_total_timeout)
        try:
            async with up.session.post(
                up.base_url + "/chat/completions", data=body, headers=up.headers("summary"), timeout=timeout
            ) as resp:
                if resp.status != 200:
                    log.warning("summary request failed", extra={"status": resp.status})
                    return None
                data = orjson.loads(await resp.read())
            text = data["choices"][0]["message"]["content"]
            return text.strip() if isinstance(text, str) else None
        except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError, KeyError, IndexError):
            log.warning("summary request failed", exc_info=True)
            return None

    async def drain(self) -> None:
        """Wait for answers still being stored (shutdown)."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
