"""Vector store on qdrant-client: a Qdrant server (compose, K3s) or its local mode (``path=``).

Local mode is exact brute force in Python (fine for tests, slow past ~10k chunks); the embedded
default uses ``EdgeStore`` instead. Both pass the same contract tests.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from nova.errors import ServiceUnavailable
from nova.rag.vectorstore import DENSE, RRF_K, SPARSE, ChunkPoint, StoreHit, StoreQuery, check_query

P = ParamSpec("P")
R = TypeVar("R")


def _unavailable_on_failure(fn: Callable[P, R]) -> Callable[P, R]:
    """A down or failing Qdrant server becomes a 503 with a clear message, never a bare 500."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError, TimeoutError) as exc:
            raise ServiceUnavailable(
                f"vector store unavailable: {exc}", code="vector_store_unavailable"
            ) from exc

    return wrapper


class QdrantStore:
    name = "qdrant"

    def __init__(
        self,
        *,
        collection: str,
        url: str | None = None,
        api_key: str | None = None,
        path: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        if url is None and path is None:
            raise ValueError("QdrantStore needs a server url or a local path (':memory:' for RAM only)")
        self.collection = collection
        self.local = url is None
        if url is not None:
            self._client = QdrantClient(
                url=url, api_key=api_key, timeout=int(timeout), check_compatibility=False
            )
        else:
            assert path is not None
            if str(path) == ":memory:":
                self._client = QdrantClient(location=":memory:")
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._client = QdrantClient(path=str(path))

    def ensure(self, dense_dim: int) -> None:
        try:
            exists = self._client.collection_exists(self.collection)
        except Exception as exc:  # connection refused, timeouts: the server is down
            raise ServiceUnavailable(f"qdrant unreachable: {exc}") from exc
        if exists:
            params = self._client.get_collection(self.collection).config.params.vectors
            size = params[DENSE].size if isinstance(params, dict) else None
            if size != dense_dim:
                raise ServiceUnavailable(
                    f"qdrant collection {self.collection!r} has dense size {size}, "
                    f"embedder gives {dense_dim}; "
                    "use another NOVA_RAG_QDRANT_COLLECTION or re-ingest"
                )
            return
        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: qm.VectorParams(size=dense_dim, distance=qm.Distance.COSINE)},
            sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            hnsw_config=qm.HnswConfigDiff(payload_m=16, m=16),
        )
        if self.local:
            return  # local mode ignores payload indexes (and warns); it scans everything anyway
        self._client.create_payload_index(
            self.collection,
            "tenant",
            qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True),
        )
        for key in ("collection", "document_id"):
            self._client.create_payload_index(self.collection, key, qm.PayloadSchemaType.KEYWORD)

    @_unavailable_on_failure
    def upsert(self, points: list[ChunkPoint]) -> None:
        if not points:
            return
        structs = [
            qm.PointStruct(
                id=p.point_id,
                vector={
                    DENSE: p.dense,
                    SPARSE: qm.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                },
                payload=p.payload(),
            )
            for p in points
        ]
        self._client.upsert(self.collection, structs, wait=True)

    @staticmethod
    def _scope(tenant: str, collection: str, document_id: str | None) -> qm.Filter:
        must: list[Any] = [
            qm.FieldCondition(key="tenant", match=qm.MatchValue(value=tenant)),
            qm.FieldCondition(key="collection", match=qm.MatchValue(value=collection)),
        ]
        if document_id is not None:
            must.append(qm.FieldCondition(key="document_id", match=qm.MatchValue(value=document_id)))
        return qm.Filter(must=must)

    @_unavailable_on_failure
    def delete(self, tenant: str, collection: str, document_id: str | None = None) -> None:
        self._client.delete(
            self.collection,
            points_selector=qm.FilterSelector(filter=self._scope(tenant, collection, document_id)),
            wait=True,
        )

    @_unavailable_on_failure
    def count(self, tenant: str, collection: str, document_id: str | None = None) -> int:
        res = self._client.count(
            self.collection, count_filter=self._scope(tenant, collection, document_id), exact=True
        )
        return int(res.count)

    @staticmethod
    def _filter(tenant: str, q: StoreQuery) -> qm.Filter:
        must: list[Any] = [
            qm.FieldCondition(key="tenant", match=qm.MatchValue(value=tenant)),
            qm.FieldCondition(key="collection", match=qm.MatchAny(any=list(q.collections))),
        ]
        if q.document_ids:
            must.append(qm.FieldCondition(key="document_id", match=qm.MatchAny(any=list(q.document_ids))))
        for key, value in (q.metadata or {}).items():
            must.append(qm.FieldCondition(key=f"metadata.{key}", match=qm.MatchValue(value=value)))
        return qm.Filter(must=must)

    @_unavailable_on_failure
    def search(self, tenant: str, query: StoreQuery) -> list[StoreHit]:
        check_query(query)
        flt = self._filter(tenant, query)
        sparse = (
            qm.SparseVector(indices=query.sparse.indices, values=query.sparse.values)
            if query.sparse is not None and query.sparse.indices
            else None
        )
        mode = query.mode
        if mode == "hybrid" and sparse is None:
            mode = "dense"  # nothing lexical left after stop words: dense alone decides
        if mode == "sparse" and sparse is None:
            return []
        common: dict[str, Any] = {
            "query_filter": flt,
            "limit": query.limit,
            "with_payload": True,
            "score_threshold": query.min_score,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "dense":
                res = self._client.query_points(self.collection, query=query.dense, using=DENSE, **common)
            elif mode == "sparse":
                res = self._client.query_points(self.collection, query=sparse, using=SPARSE, **common)
            else:
                fusion: Any = (
                    qm.RrfQuery(rrf=qm.Rrf(k=RRF_K))
                    if query.fusion == "rrf"
                    else qm.FusionQuery(fusion=qm.Fusion.DBSF)
                )
                prefetch = [
                    qm.Prefetch(query=query.dense, using=DENSE, limit=query.prefetch_limit, filter=flt),
                    qm.Prefetch(query=sparse, using=SPARSE, limit=query.prefetch_limit, filter=flt),
                ]
                res = self._client.query_points(self.collection, prefetch=prefetch, query=fusion, **common)
        return [
            StoreHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in res.points
        ]

    def optimize(self) -> None:
        """The Qdrant server indexes in the background; local mode has no index to build."""

    def close(self) -> None:
        self._client.close()
