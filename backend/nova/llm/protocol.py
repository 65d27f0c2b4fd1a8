"""The slice of the OpenAI protocol the gateway reads; everything else passes through untouched.

Nova parses the body once, checks only the fields it acts on (model, stream, messages/prompt,
token limits, its own extensions) and forwards every other field as the client sent it, so
tools, response_format, logprobs, n, seed, guided decoding and vLLM's extras just work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from nova.errors import BadRequest

Route = Literal["chat", "completions", "embeddings"]
NOVA_EXTENSIONS = ("conversation_id", "rag")


@dataclass(slots=True)
class RequestView:
    route: Route
    body: dict[str, Any]
    raw: bytes
    model: str
    stream: bool
    client_wants_usage: bool
    max_tokens: int | None
    session_key: str | None
    conversation_id: str | None
    rag: dict[str, Any] | None
    modified: bool = False
    collect_content: bool = False

    @property
    def estimated_tokens(self) -> int:
        """Cheap upper-ish bound for rate limiting: ~4 bytes per prompt token plus the output cap."""
        return len(self.raw) // 4 + (self.max_tokens or 256)


def _bad(msg: str, param: str) -> BadRequest:
    return BadRequest(msg, param=param, code="invalid_value")


def _opt_int(body: dict[str, Any], name: str) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise _bad(f"'{name}' must be a positive integer.", name)
    return v


def parse_request(raw: bytes, route: Route, session_header: str | None) -> RequestView:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"Request body is not valid JSON: {err}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a non-empty string.", "model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream")
    if route == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise _bad("'messages' must be a non-empty array of message objects.", "messages")
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)) or not prompt:
            raise _bad("'prompt' must be a non-empty string or array.", "prompt")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise _bad("'stream_options' must be an object.", "stream_options")
    max_tokens = _opt_int(body, "max_completion_tokens") or _opt_int(body, "max_tokens")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string.", "user")
    conversation_id = body.get("conversation_id")
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise _bad("'conversation_id' must be a string.", "conversation_id")
    rag = body.get("rag")
    if rag is not None and not isinstance(rag, dict):
        raise _bad("'rag' must be an object.", "rag")
    return RequestView(
        route=route,
        body=body,
        raw=raw,
        model=model,
        stream=stream,
        client_wants_usage=bool(so and so.get("include_usage")),
        max_tokens=max_tokens,
        session_key=conversation_id or user or session_header,
        conversation_id=conversation_id,
        rag=rag,
    )


def upstream_payload(view: RequestView, upstream_model: str) -> bytes:
    """The body sent upstream: the client's bytes when nothing needs changing (the common case)."""
    body = view.body
    changes = view.modified or upstream_model != view.model or any(k in body for k in NOVA_EXTENSIONS)
    if view.stream and not view.client_wants_usage:
        changes = True
    if not changes:
        return view.raw
    out = {k: v for k, v in body.items() if k not in NOVA_EXTENSIONS}
    out["model"] = upstream_model
    if view.stream and not view.client_wants_usage:
        so = dict(out.get("stream_options") or {})
        so["include_usage"] = True
        out["stream_options"] = so
    return orjson.dumps(out)


def model_card(name: str, created: int, owned_by: str, context_window: int | None) -> dict[str, Any]:
    card: dict[str, Any] = {"id": name, "object": "model", "created": created, "owned_by": owned_by}
    if context_window:
        card["max_model_len"] = context_window
    return card
