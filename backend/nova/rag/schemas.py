"""Request/response models of the RAG API, shared by the in-process service, the rag service
HTTP app, its HTTP client and the gateway's public routers (one wire format everywhere)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Mode = Literal["dense", "sparse", "hybrid"]
FusionKind = Literal["rrf", "dbsf"]
MetadataValue = str | int | bool
COLLECTION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class EmbedRequest(BaseModel):
    input: list[str] = Field(min_length=1, max_length=2048)
    kind: Literal["document", "query"] = "document"


class EmbedResponse(BaseModel):
    model: str
    dim: int
    embeddings: list[list[float]]
    tokens: int


class RerankRequest(BaseModel):
    query: str = Field(min_length=1)
    documents: list[str] = Field(min_length=1, max_length=1000)
    top_n: int | None = Field(default=None, ge=1)


class RerankResult(BaseModel):
    index: int
    score: float


class RerankResponse(BaseModel):
    model: str
    results: list[RerankResult]


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=8192)
    collections: list[str] = Field(min_length=1, max_length=32)
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: Mode = "hybrid"
    fusion: FusionKind | None = None
    rerank: bool | None = None  # None: rerank when a reranker is configured
    min_score: float | None = None
    document_ids: list[str] | None = None
    metadata: dict[str, MetadataValue] | None = None


class SearchHit(BaseModel):
    collection: str
    document_id: str
    chunk_index: int
    filename: str
    heading: str
    text: str
    score: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    mode: Mode
    reranked: bool
    hits: list[SearchHit]


class CollectionIn(BaseModel):
    description: str = Field(default="", max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Collection(BaseModel):
    id: str
    description: str
    metadata: dict[str, Any]
    created_at: float
    documents: int


class Document(BaseModel):
    id: str
    collection: str
    filename: str
    kind: str
    sha256: str
    bytes: int
    status: Literal["queued", "processing", "ready", "failed"]
    error: str | None
    chunks_total: int
    chunks_done: int
    progress: float
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    deduplicated: bool = False


class RagOptions(BaseModel):
    """The ``rag`` extension of a chat completion request."""

    collections: list[str] = Field(min_length=1, max_length=32)
    top_k: int | None = Field(default=None, ge=1, le=50)
    rerank: bool | None = None
    min_score: float | None = None
    mode: Mode = "hybrid"


class Citation(BaseModel):
    index: int
    collection: str
    document_id: str
    filename: str
    chunk_index: int
    score: float
    snippet: str
