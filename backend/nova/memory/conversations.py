"""Conversation resources for the API: list, create, read, rename, delete — always per user.

Another user's conversation is reported as not found (never 403), so ids cannot be probed.
Reads merge messages still in the write queue (present in session memory, not yet in the
database), so a client always sees what it just sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from nova.errors import BadRequest, NovaError, ServiceUnavailable
from nova.memory.service import CONVERSATION_ID, ConversationMemory, not_found
from nova.memory.session import Session
from nova.store.base import utcnow
from nova.store.conversations import Conversation, ConversationRepository, decode_cursor, encode_cursor

log = logging.getLogger("nova.memory")

MAX_TITLE = 255
DEFAULT_TITLE = "New conversation"


@dataclass(frozen=True, slots=True)
class MessageInfo:
    seq: int
    role: str
    content: str
    tokens: int
    status: str
    error: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    id: str
    title: str
    model: str | None
    created_at: datetime
    updated_at: datetime
    messages: list[MessageInfo] = field(default_factory=list)


def _info(c: Conversation, messages: list[MessageInfo] | None = None) -> ConversationInfo:
    return ConversationInfo(c.id, c.title, c.model, c.created_at, c.updated_at, messages or [])


def _title(title: str | None) -> str:
    t = (title or "").strip()
    if len(t) > MAX_TITLE:
        raise BadRequest(f"'title' is limited to {MAX_TITLE} characters.", param="title")
    return t


class ConversationService:
    def __init__(self, memory: ConversationMemory) -> None:
        self._memory = memory
        self._db = memory.db

    async def page(
        self, user_id: str, limit: int, cursor: str | None
    ) -> tuple[list[ConversationInfo], str | None]:
        if not 1 <= limit <= 100:
            raise BadRequest("'limit' must be between 1 and 100.", param="limit")
        after = None
        if cursor:
            after = decode_cursor(cursor)
            if after is None:
                raise BadRequest("Invalid cursor.", param="cursor")
        try:
            async with self._db.session() as s:
                rows = await ConversationRepository(s).page(user_id, limit + 1, after)
        except Exception as err:
            raise ServiceUnavailable("The conversation store is unavailable; retry shortly.") from err
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].updated_at, rows[-1].id) if more and rows else None
        return [_info(c) for c in rows], next_cursor

    async def create(self, user_id: str, title: str | None, model: str | None) -> ConversationInfo:
        try:
            async with self._db.session() as s, s.begin():
                conv = await ConversationRepository(s).create(user_id, _title(title) or DEFAULT_TITLE, model)
        except NovaError:
            raise
        except Exception as err:
            raise ServiceUnavailable("The conversation store is unavailable; retry shortly.") from err
        try:  # a new conversation is known to be empty: its first turn needs no database read
            await self._memory.store.seed(Session(conv.id, user_id, 0))
        except Exception:
            log.warning("could not seed session memory for a new conversation", exc_info=True)
        return _info(conv)

    async def _owned(self, repo: ConversationRepository, user_id: str, conv_id: str) -> Conversation:
        if not CONVERSATION_ID.fullmatch(conv_id):
            raise not_found(conv_id)
        conv = await repo.owned(conv_id, user_id)
        if conv is None:
            raise not_found(conv_id)
        return conv

    async def get(self, user_id: str, conv_id: str) -> ConversationInfo:
        try:
            async with self._db.session() as s:
                repo = ConversationRepository(s)
                conv = await self._owned(repo, user_id, conv_id)
                rows = await repo.messages(conv_id)
        except NovaError:
            raise
        except Exception as err:
            raise ServiceUnavailable("The conversation store is unavailable; retry shortly.") from err
        messages = [
            MessageInfo(r.seq, r.role, r.content, r.tokens, r.status, r.error, r.created_at) for r in rows
        ]
        try:  # messages accepted but still queued for the database
            cached = await self._memory.store.get(conv_id)
        except Exception:
            cached = None
        if cached is not None:
            have = {m.seq for m in messages}
            extra = [
                m for m in cached.messages if m.seq not in have and (not messages or m.seq > messages[-1].seq)
            ]
            messages.extend(
                MessageInfo(m.seq, m.role, m.content, m.tokens, m.status, None, None) for m in extra
            )
        return _info(conv, messages)

    async def rename(self, user_id: str, conv_id: str, title: str) -> ConversationInfo:
        clean = _title(title)
        if not clean:
            raise BadRequest("'title' must not be empty.", param="title")
        try:
            async with self._db.session() as s, s.begin():
                repo = ConversationRepository(s)
                conv = await self._owned(repo, user_id, conv_id)
                conv.title = clean
                conv.updated_at = utcnow()
        except NovaError:
            raise
        except Exception as err:
            raise ServiceUnavailable("The conversation store is unavailable; retry shortly.") from err
        return _info(conv)

    async def delete(self, user_id: str, conv_id: str) -> None:
        try:
            async with self._db.session() as s, s.begin():
                repo = ConversationRepository(s)
                await self._owned(repo, user_id, conv_id)
                await repo.delete(conv_id)
        except NovaError:
            raise
        except Exception as err:
            raise ServiceUnavailable("The conversation store is unavailable; retry shortly.") from err
        try:
            await self._memory.store.delete(conv_id)
        except Exception:  # the TTL ends it; the database no longer has it, so a reload 404s
            pass
