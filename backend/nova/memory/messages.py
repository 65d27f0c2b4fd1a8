"""The message shape memory works with: what is stored, counted once, and assembled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from nova.errors import BadRequest

STORED_ROLES = frozenset({"user", "assistant"})


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a conversation with its token count (``seq`` 0 = not stored, e.g. system)."""

    seq: int
    role: str
    content: str
    tokens: int
    status: str = "complete"

    def wire(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content}

    def dumps(self) -> bytes:
        return orjson.dumps([self.seq, self.role, self.content, self.tokens, self.status])

    @classmethod
    def loads(cls, raw: bytes | str) -> StoredMessage:
        seq, role, content, tokens, status = orjson.loads(raw)
        return cls(int(seq), str(role), str(content), int(tokens), str(status))


def message_text(message: dict[str, Any], index: int) -> str:
    """Plain text of a chat message; content parts must be text (images are not stored)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise BadRequest(
                    "Only text content can be used with conversation_id.", param=f"messages[{index}].content"
                )
        return "".join(parts)
    raise BadRequest("Message content must be a string.", param=f"messages[{index}].content")
