"""Conversations and their messages: tables and the repository the memory module uses.

Messages are keyed by ``(conversation_id, seq)``: the sequence number is allocated by session
memory when the message is accepted, before it reaches the database, so queued writes can be
replayed any number of times (upserts) and always land in the conversation's order.
``conversations.user_id`` has no foreign key, like ``usage_events``: the bootstrap principal has
no users row, and users are disabled rather than deleted.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from nova.store.base import Base, UTCDateTime, new_id, utcnow

MESSAGE_STATUSES = ("complete", "partial", "error")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(255), default="")
    model: Mapped[str | None] = mapped_column(String(128))
    summary: Mapped[str | None] = mapped_column(Text)
    summary_upto_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True, slots=True)
class MessageWrite:
    """One message as queued for the database (idempotent: upsert on conversation + seq)."""

    id: str
    conversation_id: str
    seq: int
    role: str
    content: str
    tokens: int
    status: str
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SummaryWrite:
    conversation_id: str
    summary: str
    upto_seq: int


Write = MessageWrite | SummaryWrite


def encode_cursor(updated_at: datetime, conv_id: str) -> str:
    raw = f"{updated_at.isoformat()}|{conv_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, conv_id = raw.partition("|")
        return datetime.fromisoformat(ts), conv_id
    except (ValueError, UnicodeDecodeError):
        return None


class ConversationRepository:
    """Plain queries over one session; the caller owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- conversations --------------------------------------------------------------------
    async def create(
        self, user_id: str, title: str = "", model: str | None = None, conv_id: str | None = None
    ) -> Conversation:
        now = utcnow()
        conv = Conversation(
            id=conv_id or new_id(),
            user_id=user_id,
            title=title,
            model=model,
            summary=None,
            summary_upto_seq=0,
            created_at=now,
            updated_at=now,
        )
        self.session.add(conv)
        await self.session.flush()
        return conv

    async def get(self, conv_id: str) -> Conversation | None:
        return await self.session.get(Conversation, conv_id)

    async def owned(self, conv_id: str, user_id: str) -> Conversation | None:
        conv = await self.get(conv_id)
        return conv if conv is not None and conv.user_id == user_id else None

    async def page(
        self, user_id: str, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Conversation]:
        """Newest first (``updated_at``, then id); ``after`` is the last row of the previous page."""
        stmt = select(Conversation).where(Conversation.user_id == user_id)
        if after is not None:
            stmt = stmt.where(tuple_(Conversation.updated_at, Conversation.id) < tuple_(after[0], after[1]))
        stmt = stmt.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def rename(self, conv_id: str, title: str) -> None:
        await self.session.execute(
            update(Conversation).where(Conversation.id == conv_id).values(title=title, updated_at=utcnow())
        )

    async def delete(self, conv_id: str) -> None:
        # Explicit, so it does not depend on SQLite's foreign_keys pragma being on.
        await self.session.execute(delete(Message).where(Message.conversation_id == conv_id))
        await self.session.execute(delete(Conversation).where(Conversation.id == conv_id))

    # -- messages -------------------------------------------------------------------------
    async def messages(self, conv_id: str, after_seq: int = 0, upto_seq: int | None = None) -> list[Message]:
        stmt = select(Message).where(Message.conversation_id == conv_id, Message.seq > after_seq)
        if upto_seq is not None:
            stmt = stmt.where(Message.seq <= upto_seq)
        return list((await self.session.execute(stmt.order_by(Message.seq))).scalars())

    async def recent(self, conv_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages, oldest first."""
        stmt = (
            select(Message)
            .where(Message.conversation_id == conv_id)
            .order_by(Message.seq.desc())
            .limit(limit)
        )
        rows = list((await self.session.execute(stmt)).scalars())
        rows.reverse()
        return rows

    async def max_seq(self, conv_id: str) -> int:
        stmt = (
            select(Message.seq)
            .where(Message.conversation_id == conv_id)
            .order_by(Message.seq.desc())
            .limit(1)
        )
        return int((await self.session.execute(stmt)).scalar_one_or_none() or 0)

    # -- queued writes --------------------------------------------------------------------
    async def existing(self, conv_ids: Iterable[str]) -> set[str]:
        ids = list(set(conv_ids))
        if not ids:
            return set()
        rows = await self.session.execute(select(Conversation.id).where(Conversation.id.in_(ids)))
        return set(rows.scalars())

    async def apply(self, writes: Sequence[Write]) -> int:
        """Apply queued writes in order; writes for deleted conversations are skipped.

        Returns how many were skipped. Idempotent: replaying a batch changes nothing.
        """
        live = await self.existing(w.conversation_id for w in writes)
        rows: dict[tuple[str, int], dict[str, Any]] = {}  # last write of a (conversation, seq) wins
        touched: dict[str, datetime] = {}
        summaries: dict[str, SummaryWrite] = {}
        skipped = 0
        for w in writes:
            if w.conversation_id not in live:
                skipped += 1
                continue
            if isinstance(w, MessageWrite):
                rows[(w.conversation_id, w.seq)] = {
                    "id": w.id,
                    "conversation_id": w.conversation_id,
                    "seq": w.seq,
                    "role": w.role,
                    "content": w.content,
                    "tokens": w.tokens,
                    "status": w.status,
                    "error": w.error,
                    "created_at": w.created_at,
                }
                prev = touched.get(w.conversation_id)
                if prev is None or w.created_at > prev:
                    touched[w.conversation_id] = w.created_at
            else:
                prev_summary = summaries.get(w.conversation_id)
                if prev_summary is None or w.upto_seq >= prev_summary.upto_seq:
                    summaries[w.conversation_id] = w
        if rows:
            await self._upsert(list(rows.values()))
        for conv_id, ts in touched.items():
            await self.session.execute(
                update(Conversation)
                .where(Conversation.id == conv_id, Conversation.updated_at < ts)
                .values(updated_at=ts)
            )
        for s in summaries.values():
            await self.session.execute(
                update(Conversation)
                .where(Conversation.id == s.conversation_id, Conversation.summary_upto_seq <= s.upto_seq)
                .values(summary=s.summary, summary_upto_seq=s.upto_seq)
            )
        return skipped

    async def _upsert(self, rows: list[dict[str, Any]]) -> None:
        dialect = self.session.bind.dialect.name if self.session.bind else "postgresql"
        ins: Any = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(Message)
        stmt = ins.on_conflict_do_update(
            index_elements=[Message.conversation_id, Message.seq],
            set_={
                "content": ins.excluded.content,
                "tokens": ins.excluded.tokens,
                "status": ins.excluded.status,
                "error": ins.excluded.error,
                "role": ins.excluded.role,
            },
        )
        await self.session.execute(stmt, rows)
