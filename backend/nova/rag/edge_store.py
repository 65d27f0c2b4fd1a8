"""Vector store on qdrant-edge: Qdrant's own engine (HNSW, sparse inverted index, payload
indexes) embedded in-process. The embedded default: exact-enough and fast at 100k+ chunks where
qdrant-client's local mode scans everything in Python.

The edge bindings hold the GIL while they run. Queries and small upserts take milliseconds, but
building the HNSW index (``optimize``) takes minutes at 100k chunks and would freeze the whole
process (the gateway, in the embedded default). So optimisation runs out of process, blue-green:
copy the flushed shard, optimise the copy in a child process (``python -m nova.rag.edge_store
optimize DIR``) while this process keeps serving and recording writes, then swap the copy in and
replay the writes made meanwhile. All shard calls share one lock; that costs no parallelism
because each call holds the GIL anyway.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from nova.errors import ServiceUnavailable
from nova.rag.vectorstore import DENSE, RRF_K, SPARSE, ChunkPoint, StoreHit, StoreQuery, check_query

_INDEXED_KEYWORDS = ("collection", "document_id")
log = logging.getLogger("nova.rag")


class EdgeStore:
    name = "edge"

    def __init__(self, path: Path, *, search_threads: int | None = None) -> None:
        self.path = path
        self.search_threads = search_threads
        self._shard: Any = None
        self._config_obj: Any = None
        self._lock = threading.RLock()
        self._optimizing = threading.Lock()
        self._replay: list[Any] | None = None  # writes made while a copy is being optimised

    def _config(self, dense_dim: int) -> Any:
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dense_dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000, payload_m=16),
            max_search_threads=self.search_threads,
        )

    @property
    def _old(self) -> Path:
        return self.path.with_name(self.path.name + ".old")

    @property
    def _copy(self) -> Path:
        return self.path.with_name(self.path.name + ".optimizing")

    def ensure(self, dense_dim: int) -> None:
        if self._shard is not None:
            return
        config = self._config(dense_dim)
        self._config_obj = config
        if not self.path.exists() and self._old.exists():  # crashed between the two swap renames
            self._old.rename(self.path)
        shutil.rmtree(self._copy, ignore_errors=True)
        shutil.rmtree(self._old, ignore_errors=True)
        try:
            if (self.path / "edge_config.json").exists() or any(self.path.glob("segments*")):
                self._shard = qe.EdgeShard.load(str(self.path), config)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(self.path), config)
                self._shard.update(
                    qe.UpdateOperation.create_field_index("tenant", qe.KeywordIndexParams(is_tenant=True))
                )
                for key in _INDEXED_KEYWORDS:
                    self._shard.update(qe.UpdateOperation.create_field_index(key, qe.KeywordIndexParams()))
        except Exception as exc:  # incompatible dimension, corrupt files, locked by another process
            raise ServiceUnavailable(f"cannot open the embedded vector store at {self.path}: {exc}") from exc

    def _apply(self, op: Any) -> None:
        with self._lock:
            self.shard.update(op)
            if self._replay is not None:
                self._replay.append(op)

    @property
    def shard(self) -> Any:
        if self._shard is None:
            raise RuntimeError("EdgeStore.ensure() was not called")
        return self._shard

    def upsert(self, points: list[ChunkPoint]) -> None:
        if not points:
            return
        converted = [
            qe.Point(
                p.point_id,
                {DENSE: p.dense, SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)},
                p.payload(),
            )
            for p in points
        ]
        self._apply(qe.UpdateOperation.upsert_points(converted))

    @staticmethod
    def _scope(tenant: str, collection: str, document_id: str | None) -> Any:
        must: list[Any] = [
            qe.FieldCondition("tenant", match=qe.MatchValue(tenant)),
            qe.FieldCondition("collection", match=qe.MatchValue(collection)),
        ]
        if document_id is not None:
            must.append(qe.FieldCondition("document_id", match=qe.MatchValue(document_id)))
        return qe.Filter(must=must)

    def delete(self, tenant: str, collection: str, document_id: str | None = None) -> None:
        self._apply(qe.UpdateOperation.delete_points_by_filter(self._scope(tenant, collection, document_id)))

    def count(self, tenant: str, collection: str, document_id: str | None = None) -> int:
        request = qe.CountRequest(filter=self._scope(tenant, collection, document_id), exact=True)
        with self._lock:
            return int(self.shard.count(request))

    @staticmethod
    def _filter(tenant: str, q: StoreQuery) -> Any:
        must: list[Any] = [
            qe.FieldCondition("tenant", match=qe.MatchValue(tenant)),
            qe.FieldCondition("collection", match=qe.MatchAny(list(q.collections))),
        ]
        if q.document_ids:
            must.append(qe.FieldCondition("document_id", match=qe.MatchAny(list(q.document_ids))))
        for key, value in (q.metadata or {}).items():
            must.append(qe.FieldCondition(f"metadata.{key}", match=qe.MatchValue(value)))
        return qe.Filter(must=must)

    def search(self, tenant: str, query: StoreQuery) -> list[StoreHit]:
        check_query(query)
        flt = self._filter(tenant, query)
        sparse: Any = (
            qe.SparseVector(query.sparse.indices, query.sparse.values)
            if query.sparse is not None and query.sparse.indices
            else None
        )
        mode = query.mode
        if mode == "hybrid" and sparse is None:
            mode = "dense"
        if mode == "sparse" and sparse is None:
            return []
        dense: Any = query.dense
        if mode == "dense":
            request = qe.QueryRequest(
                limit=query.limit,
                query=qe.Query.Nearest(dense, using=DENSE),
                filter=flt,
                with_payload=True,
                score_threshold=query.min_score,
            )
        elif mode == "sparse":
            request = qe.QueryRequest(
                limit=query.limit,
                query=qe.Query.Nearest(sparse, using=SPARSE),
                filter=flt,
                with_payload=True,
                score_threshold=query.min_score,
            )
        else:
            fusion: Any = qe.Fusion.Rrf(k=RRF_K) if query.fusion == "rrf" else qe.Fusion.Dbsf()
            request = qe.QueryRequest(
                limit=query.limit,
                prefetches=[
                    qe.Prefetch(
                        limit=query.prefetch_limit,
                        query=qe.Query.Nearest(dense, using=DENSE),
                        filter=flt,
                    ),
                    qe.Prefetch(
                        limit=query.prefetch_limit, query=qe.Query.Nearest(sparse, using=SPARSE), filter=flt
                    ),
                ],
                query=fusion,
                filter=flt,
                with_payload=True,
                score_threshold=query.min_score,
            )
        with self._lock:
            points = self.shard.query(request)
        return [StoreHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]

    def optimize(self) -> None:
        """Build HNSW indexes after bulk writes without stalling this process (see module doc).

        Blocks the calling thread for the child's run time; searches and writes continue meanwhile.
        """
        if not self._optimizing.acquire(blocking=False):
            return  # one optimisation at a time; the running one will be followed by the next call
        try:
            with self._lock:
                self.shard.flush()
                shutil.rmtree(self._copy, ignore_errors=True)
                shutil.copytree(self.path, self._copy)
                self._replay = []
            try:
                subprocess.run(
                    [sys.executable, "-m", "nova.rag.edge_store", "optimize", str(self._copy)],
                    check=True,
                    capture_output=True,
                    timeout=3600,
                )
            except (subprocess.SubprocessError, OSError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                log.error(
                    "edge shard optimisation failed: %s %s", exc, detail.decode(errors="replace")[-2000:]
                )
                with self._lock:
                    self._replay = None
                shutil.rmtree(self._copy, ignore_errors=True)
                return
            with self._lock:
                self.shard.close()
                self.path.rename(self._old)
                self._copy.rename(self.path)
                self._shard = qe.EdgeShard.load(str(self.path), self._config_obj)
                for op in self._replay or []:
                    self._shard.update(op)
                self._replay = None
                self._shard.flush()
            shutil.rmtree(self._old, ignore_errors=True)
        finally:
            self._optimizing.release()

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None


def _optimize_main(path: str) -> None:
    shard = qe.EdgeShard.load(path)
    shard.optimize()
    shard.flush()
    shard.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "optimize":
        _optimize_main(sys.argv[2])
    else:
        sys.exit("usage: python -m nova.rag.edge_store optimize SHARD_DIR")
