"""The vector store contract every backend implements (qdrant-client, qdrant-edge).

Chunks of every tenant share one physical collection; ``tenant`` is a payload field indexed with
``is_tenant`` (Qdrant co-locates each tenant's points) and every read or delete takes the tenant as
a required argument that the backend turns into a ``must`` condition, so no query can cross
tenants. Each point has a named dense vector ``dense`` and a sparse vector ``sparse`` (BM25 term
weights; Qdrant applies IDF). Hybrid search prefetches candidates from both and fuses them inside
the engine with RRF (or DBSF).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nova.rag.schemas import FusionKind, MetadataValue, Mode

if TYPE_CHECKING:
    from nova.rag.sparse import SparseVec

__all__ = ["FusionKind", "MetadataValue", "Mode"]

DENSE = "dense"
SPARSE = "sparse"
RRF_K = 60
_POINT_NS = uuid.UUID("6f1c1f0e-6c1b-4a43-9d0c-2f1f6a9b7e01")


def point_id(document_id: str, chunk_index: int) -> str:
    """Deterministic ids make re-ingesting a document an idempotent overwrite."""
    return str(uuid.uuid5(_POINT_NS, f"{document_id}/{chunk_index}"))


@dataclass(slots=True)
class ChunkPoint:
    tenant: str
    collection: str
    document_id: str
    chunk_index: int
    text: str
    dense: list[float]
    sparse: SparseVec
    heading: str = ""
    filename: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def point_id(self) -> str:
        return point_id(self.document_id, self.chunk_index)

    def payload(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "collection": self.collection,
            "document_id": self.document_id,
            "chunk_index": self.chunk_index,
            "text": self.text,
            "heading": self.heading,
            "filename": self.filename,
            "metadata": self.metadata,
        }


@dataclass(slots=True)
class StoreQuery:
    collections: list[str]
    mode: Mode = "hybrid"
    dense: list[float] | None = None
    sparse: SparseVec | None = None
    fusion: FusionKind = "rrf"
    limit: int = 10
    prefetch_limit: int = 100
    document_ids: list[str] | None = None
    metadata: dict[str, MetadataValue] | None = None
    min_score: float | None = None


@dataclass(slots=True)
class StoreHit:
    id: str
    score: float
    payload: dict[str, Any]


class VectorStore(Protocol):
    """Synchronous by design: callers run it in a worker thread next to the embedder."""

    name: str

    def ensure(self, dense_dim: int) -> None:
        """Create the physical collection and payload indexes if missing; check the dimension."""

    def upsert(self, points: list[ChunkPoint]) -> None: ...

    def delete(self, tenant: str, collection: str, document_id: str | None = None) -> None:
        """Delete one document's chunks, or a whole collection's when ``document_id`` is None."""

    def count(self, tenant: str, collection: str, document_id: str | None = None) -> int: ...

    def search(self, tenant: str, query: StoreQuery) -> list[StoreHit]: ...

    def optimize(self) -> None:
        """Give the engine a chance to build indexes after bulk writes (no-op where automatic)."""

    def close(self) -> None: ...


def check_query(query: StoreQuery) -> None:
    """Both backends reject the same malformed queries the same way."""
    if not query.collections:
        raise ValueError("a search needs at least one collection")
    if query.mode in ("dense", "hybrid") and query.dense is None:
        raise ValueError(f"{query.mode} search needs a dense query vector")
    if query.mode in ("sparse", "hybrid") and query.sparse is None:
        raise ValueError(f"{query.mode} search needs a sparse query vector")
