"""``RagService``: embedder + sparse encoder + vector store + reranker + ingestion jobs behind the
``RagBackend`` interface. Runs in-process in the embedded default and inside the rag service app.

Heavy work (model inference, vector search, extraction) runs in threads so the event loop stays
responsive. Ingestion jobs run on one worker thread fed from the journal; queued or interrupted
jobs are resumed when the service starts again.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any

from nova.config import Settings
from nova.errors import BadRequest, NotFound, PayloadTooLarge, ServiceUnavailable, Unprocessable
from nova.observability.metrics import RAG_DOCUMENTS, RAG_INGEST_CHUNKS, RAG_SEARCH_DURATION
from nova.rag.chunker import Chunker
from nova.rag.embedder import Embedder
from nova.rag.extract import extract_text
from nova.rag.grounding import inject, parse_options, search_request
from nova.rag.journal import CollectionRecord, DocumentRecord, Journal
from nova.rag.reranker import Reranker
from nova.rag.schemas import (
    COLLECTION_ID_PATTERN,
    Citation,
    Collection,
    CollectionIn,
    Document,
    EmbedResponse,
    RagOptions,
    RerankResponse,
    RerankResult,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from nova.rag.sparse import SparseEncoder
from nova.rag.vectorstore import ChunkPoint, StoreQuery, VectorStore

log = logging.getLogger("nova.rag")
_COLLECTION_ID = re.compile(COLLECTION_ID_PATTERN)
INGEST_BATCH = 64
OPTIMIZE_AFTER_CHUNKS = 1000


class _Deleted(Exception):
    """The document was deleted while its job ran."""


class _Stopping(Exception):
    """The service is closing: leave the job queued for the next start."""


def build_store(settings: Settings, root: Path) -> VectorStore:
    from nova.rag.qdrant_store import QdrantStore

    if settings.rag_vector_store == "edge" and not settings.rag_qdrant_url:
        from nova.rag.edge_store import EdgeStore

        return EdgeStore(root / "edge")
    key = settings.rag_qdrant_api_key.get_secret_value() if settings.rag_qdrant_api_key else None
    if settings.rag_qdrant_url:
        return QdrantStore(
            collection=settings.rag_qdrant_collection, url=settings.rag_qdrant_url, api_key=key
        )
    return QdrantStore(collection=settings.rag_qdrant_collection, path=root / "qdrant")


class RagService:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        store: VectorStore | None = None,
        root: Path | None = None,
    ) -> None:
        self.settings = settings
        self.root = root or settings.data_dir / "rag"
        self._embedder = embedder
        self._reranker = reranker
        self._store = store
        self.sparse = SparseEncoder()
        self.journal = Journal(self.root)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._doc_lock = threading.Lock()
        self._written_since_optimize = 0
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = threading.Event()
        self._started = False
        self._lock_file: Any = None

    # lifecycle
    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    def start_sync(self) -> None:
        """Load models, open the store, resume unfinished jobs (blocking; call once)."""
        if self._started:
            return
        self._lock_data_dir()
        s = self.settings
        if self._embedder is None:
            self._embedder = Embedder(
                s.rag_embed_model,
                device=s.rag_device,
                batch_size=s.rag_embed_batch_size,
                query_instruction=s.rag_embed_query_instruction,
            )
        if self._reranker is None and s.rag_rerank_model:
            self._reranker = Reranker(s.rag_rerank_model, device=s.rag_device)
        if self._store is None:
            self._store = build_store(s, self.root)
        self._store.ensure(self._embedder.dim)
        max_tokens = min(s.rag_chunk_tokens, self._embedder.max_tokens - 2)
        self.chunker = Chunker(
            self._embedder, max_tokens=max_tokens, overlap=min(s.rag_chunk_overlap, max_tokens // 3)
        )
        self.sparse = SparseEncoder(avg_len=max(32.0, max_tokens * 0.5))
        self._worker = threading.Thread(target=self._work, name="nova-rag-ingest", daemon=True)
        self._worker.start()
        self._started = True
        for doc in self.journal.pending():
            log.info("resuming ingestion of document %s (%s)", doc.id, doc.status)
            self._enqueue(doc.id)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        """Stop after the current batch; an unfinished job stays queued and resumes on restart."""
        self._stopping.set()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=120)
            self._worker = None
        if self._store is not None:
            self._store.close()
        self.journal.close()
        self._started = False
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _lock_data_dir(self) -> None:
        """One RagService per data dir: the embedded store and the job worker are not multi-process.

        Several gateway workers must share one rag service (``NOVA_RAG_URL``) instead.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ServiceUnavailable(
                f"the RAG data dir {self.root} is in use by another process (a running gateway?): "
                "upload through /v1/collections, or run one rag service (nova serve-rag) and point "
                "gateways and the CLI at it with NOVA_RAG_URL"
            ) from None
        self._lock_file = handle

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            raise RuntimeError("RagService.start() was not called")
        return self._embedder

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            raise RuntimeError("RagService.start() was not called")
        return self._store

    @property
    def reranker(self) -> Reranker | None:
        return self._reranker

    # embeddings and reranking
    async def embed(self, texts: list[str], kind: str = "document") -> EmbedResponse:
        if not texts:
            raise BadRequest("input must not be empty", param="input")
        emb = self.embedder

        def run() -> tuple[list[list[float]], int]:
            vectors = emb.embed_queries(texts) if kind == "query" else emb.embed_documents(texts)
            tokens = sum(min(emb.count_tokens(t) + 2, emb.max_tokens) for t in texts)
            return vectors.tolist(), tokens

        vectors, tokens = await asyncio.to_thread(run)
        return EmbedResponse(model=emb.model_name, dim=emb.dim, embeddings=vectors, tokens=tokens)

    async def rerank(self, query: str, documents: list[str], top_n: int | None = None) -> RerankResponse:
        reranker = self._require_reranker()
        scores = await asyncio.to_thread(reranker.score, query, documents)
        ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[: top_n or len(scores)]
        return RerankResponse(
            model=reranker.model_name, results=[RerankResult(index=i, score=scores[i]) for i in ranked]
        )

    def _require_reranker(self) -> Reranker:
        if self._reranker is None:
            raise BadRequest(
                "no reranker is configured (set NOVA_RAG_RERANK_MODEL)", code="reranker_not_configured"
            )
        return self._reranker

    # search
    async def search(self, tenant: str, request: SearchRequest) -> SearchResponse:
        def run() -> SearchResponse:
            for cid in request.collections:  # unknown or another tenant's collection: 404
                self._collection(tenant, cid)
            return self.search_sync(tenant, request)

        return await asyncio.to_thread(run)

    def search_sync(self, tenant: str, request: SearchRequest) -> SearchResponse:
        """Retrieve (and rerank) without the collection existence check: used by evaluation too."""
        started = time.perf_counter()
        top_k = request.top_k or self.settings.rag_default_top_k
        rerank = request.rerank if request.rerank is not None else self._reranker is not None
        reranker = self._require_reranker() if rerank else None
        dense = None
        if request.mode in ("dense", "hybrid"):
            dense = self.embedder.embed_query(request.query).tolist()
        sparse = self.sparse.encode_query(request.query) if request.mode in ("sparse", "hybrid") else None
        limit = max(top_k, self.settings.rag_rerank_candidates) if reranker else top_k
        raw = self.store.search(
            tenant,
            StoreQuery(
                collections=request.collections,
                mode=request.mode,
                dense=dense,
                sparse=sparse,
                fusion=request.fusion or self.settings.rag_fusion,
                limit=limit,
                prefetch_limit=max(self.settings.rag_prefetch_limit, limit),
                document_ids=request.document_ids,
                metadata=request.metadata,
                min_score=None if reranker else request.min_score,
            ),
        )
        hits = [
            SearchHit(
                collection=h.payload["collection"],
                document_id=h.payload["document_id"],
                chunk_index=int(h.payload["chunk_index"]),
                filename=h.payload.get("filename", ""),
                heading=h.payload.get("heading", ""),
                text=h.payload["text"],
                score=h.score,
                metadata=h.payload.get("metadata") or {},
            )
            for h in raw
        ]
        # fused scores tie often (same ranks swapped between retrievers) and the engine breaks
        # ties arbitrarily: order ties by document and position so results are reproducible
        hits.sort(key=lambda h: (-h.score, h.document_id, h.chunk_index))
        if reranker and hits:
            scores = reranker.score(request.query, [h.text for h in hits])
            for hit, score in zip(hits, scores, strict=True):
                hit.score = score
            hits.sort(key=lambda h: h.score, reverse=True)
            if request.min_score is not None:
                hits = [h for h in hits if h.score >= request.min_score]
        RAG_SEARCH_DURATION.labels(request.mode + ("+rerank" if reranker else "")).observe(
            time.perf_counter() - started
        )
        return SearchResponse(mode=request.mode, reranked=reranker is not None, hits=hits[:top_k])

    async def augment_chat(
        self, messages: list[dict[str, Any]], options: RagOptions | dict[str, Any], tenant: str
    ) -> tuple[list[dict[str, Any]], list[Citation]]:
        opts = parse_options(options)
        request = search_request(messages, opts)
        if request is None:
            return messages, []
        result = await self.search(tenant, request)
        return inject(messages, result.hits, max_chars=self.settings.rag_context_max_chars)

    # collections
    def _collection(self, tenant: str, cid: str) -> CollectionRecord:
        record = self.journal.get_collection(tenant, cid)
        if record is None:
            raise NotFound(f"collection {cid!r} not found", param="collection")
        return record

    async def put_collection(self, tenant: str, collection_id: str, body: CollectionIn) -> Collection:
        if not _COLLECTION_ID.match(collection_id):
            raise BadRequest(
                "collection id must be 1-128 characters of letters, digits, '.', '_' or '-'",
                param="collection",
            )
        if not self.journal.create_collection(tenant, collection_id, body.description, body.metadata):
            self.journal.update_collection(tenant, collection_id, body.description, body.metadata)
        return Collection(**self._collection(tenant, collection_id).public())

    async def get_collection(self, tenant: str, collection_id: str) -> Collection:
        return Collection(**self._collection(tenant, collection_id).public())

    async def list_collections(self, tenant: str) -> list[Collection]:
        return [Collection(**c.public()) for c in self.journal.list_collections(tenant)]

    async def delete_collection(self, tenant: str, collection_id: str) -> None:
        self._collection(tenant, collection_id)

        def run() -> None:
            with self._doc_lock:
                self.journal.delete_collection(tenant, collection_id)
                self.store.delete(tenant, collection_id)

        await asyncio.to_thread(run)

    # documents
    async def add_document(
        self,
        tenant: str,
        collection_id: str,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        wait: bool = False,
    ) -> Document:
        self._collection(tenant, collection_id)
        if len(data) > self.settings.rag_max_upload_bytes:
            raise PayloadTooLarge(
                f"file is {len(data)} bytes; the limit is {self.settings.rag_max_upload_bytes}", param="file"
            )
        for key, value in (metadata or {}).items():
            if not isinstance(value, str | int | float | bool):
                raise BadRequest(
                    f"metadata value for {key!r} must be a string, number or boolean", param="metadata"
                )
        digest = hashlib.sha256(data).hexdigest()
        existing = self.journal.find_duplicate(tenant, collection_id, digest)
        if existing is not None:
            existing.deduplicated = True
            return Document(**existing.public())
        kind, text = await asyncio.to_thread(extract_text, filename, content_type, data)
        doc = self.journal.add_document(
            tenant, collection_id, filename or "upload", kind, digest, len(data), metadata or {}, text
        )
        if wait:
            await asyncio.to_thread(self._process_now, doc.id)
        else:
            self._enqueue(doc.id)
        return Document(**self._document(tenant, collection_id, doc.id).public())

    def _document(self, tenant: str, collection_id: str, document_id: str) -> DocumentRecord:
        doc = self.journal.get_document(document_id)
        if doc is None or doc.tenant != tenant or doc.collection != collection_id:
            raise NotFound(f"document {document_id!r} not found", param="document")
        return doc

    async def list_documents(self, tenant: str, collection_id: str) -> list[Document]:
        self._collection(tenant, collection_id)
        return [Document(**d.public()) for d in self.journal.list_documents(tenant, collection_id)]

    async def get_document(self, tenant: str, collection_id: str, document_id: str) -> Document:
        return Document(**self._document(tenant, collection_id, document_id).public())

    async def delete_document(self, tenant: str, collection_id: str, document_id: str) -> None:
        self._document(tenant, collection_id, document_id)

        def run() -> None:
            with self._doc_lock:
                self.journal.delete_document(document_id)
                self.store.delete(tenant, collection_id, document_id)

        await asyncio.to_thread(run)

    # ingestion jobs
    def _enqueue(self, document_id: str) -> None:
        self._idle.clear()
        self._queue.put(document_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued job has finished (tests, CLI)."""
        return self._idle.wait(timeout)

    def _work(self) -> None:
        while True:
            doc_id = self._queue.get()
            if doc_id is None:
                return
            try:
                self._process(doc_id)
            except Exception:  # _process records failures itself; never let the worker die
                log.exception("ingestion worker error on %s", doc_id)
            if self._queue.empty():
                self._maybe_optimize()
                if self._queue.empty():
                    self._idle.set()

    def _process_now(self, doc_id: str) -> None:
        """``wait=true`` ingestion; index building is left to the worker (a no-op job wakes it)."""
        self._process(doc_id)
        self._enqueue("")

    def _maybe_optimize(self) -> None:
        """Index after a burst of writes; a few hundred unindexed chunks search fast enough."""
        if self._written_since_optimize >= OPTIMIZE_AFTER_CHUNKS and not self._stopping.is_set():
            self._written_since_optimize = 0
            try:
                self.store.optimize()
            except Exception:
                log.exception("vector store optimisation failed")

    def _process(self, doc_id: str) -> None:
        """Chunk, embed and upsert one document; on any failure remove every chunk it wrote."""
        doc = self.journal.get_document(doc_id)
        if doc is None or doc.status not in ("queued", "processing") or self._stopping.is_set():
            return
        if not self.journal.update(doc_id, status="processing", chunks_done=0, error=None):
            return
        try:
            text = self.journal.job_path(doc_id).read_text(encoding="utf-8")
            self.store.delete(doc.tenant, doc.collection, doc_id)  # leftovers of an interrupted run
            chunks = self.chunker.chunk(text)
            if not chunks:
                raise Unprocessable("document has no text to index", code="empty_document")
            self.journal.update(doc_id, chunks_total=len(chunks))
            done = 0
            for start in range(0, len(chunks), INGEST_BATCH):
                if self._stopping.is_set():
                    raise _Stopping
                batch = chunks[start : start + INGEST_BATCH]
                dense = self.embedder.embed_documents([c.text for c in batch])
                points = [
                    ChunkPoint(
                        tenant=doc.tenant,
                        collection=doc.collection,
                        document_id=doc_id,
                        chunk_index=c.index,
                        text=c.text,
                        dense=vec.tolist(),
                        sparse=self.sparse.encode_document(c.text),
                        heading=c.heading,
                        filename=doc.filename,
                        metadata=doc.metadata,
                    )
                    for c, vec in zip(batch, dense, strict=True)
                ]
                with self._doc_lock:
                    if self.journal.get_document(doc_id) is None:
                        raise _Deleted
                    self.store.upsert(points)
                done += len(batch)
                RAG_INGEST_CHUNKS.inc(len(batch))
                self._written_since_optimize += len(batch)
                self.journal.update(doc_id, chunks_done=done)
            if not self.journal.update(doc_id, status="ready"):
                raise _Deleted
            RAG_DOCUMENTS.labels("ready").inc()
        except _Stopping:
            self.journal.update(doc_id, status="queued", chunks_done=0)
            return  # keep the job text (no finish_job): the next start redoes it from scratch
        except _Deleted:
            with self._doc_lock:
                self.store.delete(doc.tenant, doc.collection, doc_id)
        except Exception as exc:
            log.warning("ingestion of %s failed: %s", doc_id, exc)
            with self._doc_lock:
                self.store.delete(doc.tenant, doc.collection, doc_id)
                self.journal.update(
                    doc_id, status="failed", error=str(exc)[:1000] or type(exc).__name__, chunks_done=0
                )
            RAG_DOCUMENTS.labels("failed").inc()
        self.journal.finish_job(doc_id)
