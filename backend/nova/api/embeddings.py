"""OpenAI-compatible ``POST /v1/embeddings`` served by the RAG embedder.

Accepts ``float`` and ``base64`` encodings (the OpenAI SDK asks for base64 by default: packed
little-endian float32). The model must be the configured embedding model (full name or its last
path segment), so clients cannot silently get vectors from a model they did not ask for.
Embeddings go through the same model permission, rate limits (requests and tokens per minute,
concurrency, budget; ``x-ratelimit-*`` headers) and usage events as chat, via
``CompletionService.admit``/``finish``.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from nova.api.collections import RagDep
from nova.api.deps import CompletionsDep, PrincipalDep, SettingsDep
from nova.errors import BadRequest, ModelNotFound, NovaError
from nova.llm.relay import Outcome
from nova.observability.context import request_id_var

router = APIRouter(prefix="/v1", tags=["embeddings"])
MAX_INPUTS = 2048


class EmbeddingsRequest(BaseModel):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


def served_names(model: str) -> set[str]:
    return {model, model.rstrip("/").rsplit("/", 1)[-1]}


@router.post("/embeddings")
async def create_embeddings(
    body: EmbeddingsRequest,
    principal: PrincipalDep,
    settings: SettingsDep,
    rag: RagDep,
    completions: CompletionsDep,
    response: Response,
) -> dict[str, Any]:
    if body.model not in served_names(settings.rag_embed_model):
        raise ModelNotFound(
            f"The embedding model {body.model!r} does not exist; this server embeds with "
            f"{settings.rag_embed_model!r}.",
            param="model",
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise BadRequest("input must not be empty", param="input")
    if not all(isinstance(t, str) for t in texts):
        raise BadRequest("token-id input is not supported; send strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
    if any(not t.strip() for t in texts):  # type: ignore[union-attr]
        raise BadRequest("input strings must not be empty", param="input")
    inputs = [str(t) for t in texts]
    estimate = sum(len(t.encode()) for t in inputs) // 3 + len(inputs)  # conservative, pre-tokenizer
    call = await completions.admit(principal, body.model, "embeddings", estimate, request_id_var.get())
    try:
        result = await rag.embed(inputs, "document")
    except NovaError as err:
        completions.finish(call, Outcome(status=err.status, error=err.code))
        raise
    except BaseException:
        completions.finish(call, Outcome(status=499, error="client_disconnected", client_gone=True))
        raise
    if body.dimensions is not None and body.dimensions != result.dim:
        wrong = BadRequest(f"this model produces {result.dim} dimensions", param="dimensions")
        completions.finish(call, Outcome(status=wrong.status, error=wrong.code, prompt_tokens=result.tokens))
        raise wrong
    completions.finish(call, Outcome(status=200, prompt_tokens=result.tokens, usage_seen=True))
    if call.lease is not None:
        response.headers.update(call.lease.headers)
    data = []
    for i, vec in enumerate(result.embeddings):
        emb: Any = vec
        if body.encoding_format == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    }
