"""Conversation repository contract, on Postgres and SQLite through the same Alembic schema."""

from __future__ import annotations

from datetime import timedelta

from nova.store.base import new_id, utcnow
from nova.store.conversations import (
    ConversationRepository,
    MessageWrite,
    SummaryWrite,
    decode_cursor,
    encode_cursor,
)
from nova.store.db import Database


def msg(conv: str, seq: int, content: str, role: str = "user", status: str = "complete") -> MessageWrite:
    return MessageWrite(new_id(), conv, seq, role, content, len(content.split()), status, None, utcnow())


async def test_create_get_rename_delete_cascade(db: Database, user: str) -> None:
    async with db.session() as s, s.begin():
        conv = await ConversationRepository(s).create(user, "first", "m")
    async with db.session() as s, s.begin():
        repo = ConversationRepository(s)
        await repo.apply([msg(conv.id, 1, "hello"), msg(conv.id, 2, "hi there", "assistant")])
    async with db.session() as s, s.begin():
        repo = ConversationRepository(s)
        assert (await repo.owned(conv.id, user)) is not None
        assert await repo.owned(conv.id, "someone-else") is None
        await repo.rename(conv.id, "renamed")
    async with db.session() as s:
        repo = ConversationRepository(s)
        got = await repo.get(conv.id)
        assert got is not None and got.title == "renamed"
        assert [(m.seq, m.role, m.content) for m in await repo.messages(conv.id)] == [
            (1, "user", "hello"),
            (2, "assistant", "hi there"),
        ]
        assert await repo.max_seq(conv.id) == 2
    async with db.session() as s, s.begin():
        await ConversationRepository(s).delete(conv.id)
    async with db.session() as s:
        repo = ConversationRepository(s)
        assert await repo.get(conv.id) is None
        assert await repo.messages(conv.id) == []


async def test_apply_is_idempotent_ordered_and_skips_deleted(db: Database, user: str) -> None:
    async with db.session() as s, s.begin():
        conv = await ConversationRepository(s).create(user)
    writes = [msg(conv.id, i, f"m{i}") for i in range(1, 6)]
    writes.append(
        MessageWrite(
            new_id(), conv.id, 5, "assistant", "final", 1, "partial", "client_disconnected", utcnow()
        )
    )
    writes.append(msg("gone-conversation", 1, "orphan"))
    for _ in range(2):  # a replayed batch changes nothing
        async with db.session() as s, s.begin():
            skipped = await ConversationRepository(s).apply(writes)
        assert skipped == 1
    async with db.session() as s:
        rows = await ConversationRepository(s).messages(conv.id)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert (rows[-1].content, rows[-1].status, rows[-1].error) == ("final", "partial", "client_disconnected")
    async with db.session() as s:
        recent = await ConversationRepository(s).recent(conv.id, 2)
        assert [r.seq for r in recent] == [4, 5]
        assert [
            r.seq for r in await ConversationRepository(s).messages(conv.id, after_seq=2, upto_seq=4)
        ] == [3, 4]


async def test_summary_only_moves_forward(db: Database, user: str) -> None:
    async with db.session() as s, s.begin():
        conv = await ConversationRepository(s).create(user)
    async with db.session() as s, s.begin():
        await ConversationRepository(s).apply([SummaryWrite(conv.id, "new", 8)])
    async with db.session() as s, s.begin():
        await ConversationRepository(s).apply([SummaryWrite(conv.id, "stale", 4)])
    async with db.session() as s:
        got = await ConversationRepository(s).get(conv.id)
    assert got is not None and (got.summary, got.summary_upto_seq) == ("new", 8)


async def test_list_newest_first_with_cursor_and_isolation(db: Database, user: str) -> None:
    ids = []
    async with db.session() as s, s.begin():
        repo = ConversationRepository(s)
        for i in range(5):
            ids.append((await repo.create(user, f"c{i}")).id)
        await repo.create("other-user", "not mine")
    # A message makes a conversation the newest.
    async with db.session() as s, s.begin():
        w = msg(ids[1], 1, "bump")
        later = MessageWrite(
            w.id, w.conversation_id, 1, "user", "bump", 1, "complete", None, utcnow() + timedelta(seconds=5)
        )
        await ConversationRepository(s).apply([later])
    seen: list[str] = []
    after = None
    async with db.session() as s:
        repo = ConversationRepository(s)
        while True:
            page = await repo.page(user, 2, after)
            seen.extend(c.id for c in page)
            if len(page) < 2:
                break
            after = decode_cursor(encode_cursor(page[-1].updated_at, page[-1].id))
    assert seen == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert decode_cursor("!!not-a-cursor") is None
