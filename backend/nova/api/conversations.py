"""``/v1/conversations``: a user's server-side conversations (list, create, read, rename, delete).

Another user's conversation answers 404, like a missing one. Timestamps are ISO 8601 (UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from nova.api.deps import PrincipalDep
from nova.errors import ServiceUnavailable
from nova.memory.conversations import ConversationInfo, ConversationService

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


async def get_conversations(request: Request) -> ConversationService:
    memory = getattr(request.app.state, "memory", None)
    if memory is None:  # switched off: 503 with a *_disabled code, as /v1/collections does for RAG
        raise ServiceUnavailable(
            "Server-side conversations are disabled on this server.", code="conversations_disabled"
        )
    service: ConversationService = memory.conversations
    return service


ConversationsDep = Annotated[ConversationService, Depends(get_conversations)]


class ConversationCreate(BaseModel):
    title: str | None = Field(default=None, max_length=255)
    model: str | None = Field(default=None, max_length=128)


class ConversationRename(BaseModel):
    title: str = Field(min_length=1, max_length=255)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def summary_out(c: ConversationInfo) -> dict[str, Any]:
    return {
        "id": c.id,
        "object": "conversation",
        "title": c.title,
        "model": c.model,
        "created_at": _ts(c.created_at),
        "updated_at": _ts(c.updated_at),
    }


def detail_out(c: ConversationInfo) -> dict[str, Any]:
    out = summary_out(c)
    out["messages"] = [
        {
            "seq": m.seq,
            "role": m.role,
            "content": m.content,
            "status": m.status,
            "error": m.error,
            "tokens": m.tokens,
            "created_at": _ts(m.created_at),
        }
        for m in c.messages
    ]
    return out


@router.get("")
async def list_conversations(
    principal: PrincipalDep,
    service: ConversationsDep,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200),
) -> dict[str, Any]:
    """Newest first (by last activity); pass ``next_cursor`` back as ``cursor`` for the next page."""
    items, next_cursor = await service.page(principal.user_id, limit, cursor)
    return {"object": "list", "data": [summary_out(c) for c in items], "next_cursor": next_cursor}


@router.post("", status_code=201)
async def create_conversation(
    principal: PrincipalDep, service: ConversationsDep, body: ConversationCreate | None = None
) -> dict[str, Any]:
    body = body or ConversationCreate()
    return summary_out(await service.create(principal.user_id, body.title, body.model))


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: str, principal: PrincipalDep, service: ConversationsDep
) -> dict[str, Any]:
    return detail_out(await service.get(principal.user_id, conversation_id))


@router.patch("/{conversation_id}")
async def rename_conversation(
    conversation_id: str, body: ConversationRename, principal: PrincipalDep, service: ConversationsDep
) -> dict[str, Any]:
    return summary_out(await service.rename(principal.user_id, conversation_id, body.title))


@router.delete("/{conversation_id}")
async def delete_conversation(
    conversation_id: str, principal: PrincipalDep, service: ConversationsDep
) -> dict[str, Any]:
    """Deletes the conversation and all its messages."""
    await service.delete(principal.user_id, conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
