"""Durable metadata of the RAG service: collections, documents and their ingestion jobs.

A small SQLite file in the rag data dir (stdlib ``sqlite3``, WAL). A document row *is* its job:
``queued``/``processing`` rows are picked up again after a restart, and the extracted text waits in
``jobs/<document_id>.txt`` next to the database until the job finishes. The rag service is the
only writer, so SQLite keeps this simple and transactional without another server.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    collection TEXT NOT NULL,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    chunks_total INTEGER NOT NULL DEFAULT 0,
    chunks_done INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_scope ON documents (tenant, collection, created_at);
CREATE INDEX IF NOT EXISTS documents_hash ON documents (tenant, collection, sha256);
CREATE INDEX IF NOT EXISTS documents_status ON documents (status);
"""

PENDING = ("queued", "processing")


@dataclass(slots=True)
class CollectionRecord:
    tenant: str
    id: str
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    documents: int = 0

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("tenant")
        return d


@dataclass(slots=True)
class DocumentRecord:
    id: str
    tenant: str
    collection: str
    filename: str
    kind: str
    sha256: str
    bytes: int
    status: str
    error: str | None = None
    chunks_total: int = 0
    chunks_done: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    deduplicated: bool = False

    @property
    def progress(self) -> float:
        if self.status == "ready":
            return 1.0
        return self.chunks_done / self.chunks_total if self.chunks_total else 0.0

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("tenant")
        d["progress"] = round(self.progress, 4)
        return d


class Journal:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.jobs_dir = root / "jobs"
        self.jobs_dir.mkdir(exist_ok=True)
        self._db = sqlite3.connect(root / "rag.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _exec(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # collections
    def create_collection(self, tenant: str, cid: str, description: str, metadata: dict[str, Any]) -> bool:
        """False when it already exists (the caller decides whether that is a conflict)."""
        return (
            self._exec(
                "INSERT OR IGNORE INTO collections (tenant, id, description, metadata, created_at) "
                "VALUES (?,?,?,?,?)",
                tenant,
                cid,
                description,
                json.dumps(metadata),
                time.time(),
            )
            == 1
        )

    def update_collection(self, tenant: str, cid: str, description: str, metadata: dict[str, Any]) -> None:
        self._exec(
            "UPDATE collections SET description=?, metadata=? WHERE tenant=? AND id=?",
            description,
            json.dumps(metadata),
            tenant,
            cid,
        )

    def get_collection(self, tenant: str, cid: str) -> CollectionRecord | None:
        rows = self._all(
            "SELECT c.*, (SELECT COUNT(*) FROM documents d "
            "WHERE d.tenant=c.tenant AND d.collection=c.id) AS n "
            "FROM collections c WHERE tenant=? AND id=?",
            tenant,
            cid,
        )
        return self._collection(rows[0]) if rows else None

    def list_collections(self, tenant: str) -> list[CollectionRecord]:
        rows = self._all(
            "SELECT c.*, (SELECT COUNT(*) FROM documents d "
            "WHERE d.tenant=c.tenant AND d.collection=c.id) AS n "
            "FROM collections c WHERE tenant=? ORDER BY id",
            tenant,
        )
        return [self._collection(r) for r in rows]

    def delete_collection(self, tenant: str, cid: str) -> list[str]:
        """Remove the collection and its document rows; returns the document ids it had."""
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM documents WHERE tenant=? AND collection=?", (tenant, cid)
                )
            ]
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM documents WHERE tenant=? AND collection=?", (tenant, cid))
            self._db.execute("DELETE FROM collections WHERE tenant=? AND id=?", (tenant, cid))
            self._db.execute("COMMIT")
        for doc_id in ids:
            self.job_path(doc_id).unlink(missing_ok=True)
        return ids

    @staticmethod
    def _collection(r: sqlite3.Row) -> CollectionRecord:
        return CollectionRecord(
            tenant=r["tenant"],
            id=r["id"],
            description=r["description"],
            metadata=json.loads(r["metadata"]),
            created_at=r["created_at"],
            documents=r["n"],
        )

    # documents / jobs
    def job_path(self, doc_id: str) -> Path:
        return self.jobs_dir / f"{doc_id}.txt"

    def find_duplicate(self, tenant: str, collection: str, sha256: str) -> DocumentRecord | None:
        rows = self._all(
            "SELECT * FROM documents "
            "WHERE tenant=? AND collection=? AND sha256=? AND status != 'failed' LIMIT 1",
            tenant,
            collection,
            sha256,
        )
        return self._document(rows[0]) if rows else None

    def add_document(
        self,
        tenant: str,
        collection: str,
        filename: str,
        kind: str,
        sha256: str,
        size: int,
        metadata: dict[str, Any],
        text: str,
    ) -> DocumentRecord:
        """Persist the extracted text first, then the queued row: a crash in between leaves no job."""
        now = time.time()
        doc = DocumentRecord(
            id=uuid.uuid4().hex,
            tenant=tenant,
            collection=collection,
            filename=filename,
            kind=kind,
            sha256=sha256,
            bytes=size,
            status="queued",
            metadata=metadata,
            created_at=now,
            updated_at=now,
        )
        tmp = self.job_path(doc.id).with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.job_path(doc.id))
        self._exec(
            "INSERT INTO documents (id, tenant, collection, filename, kind, sha256, bytes, status, metadata, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            doc.id,
            tenant,
            collection,
            filename,
            kind,
            sha256,
            size,
            doc.status,
            json.dumps(metadata),
            now,
            now,
        )
        return doc

    def get_document(self, doc_id: str) -> DocumentRecord | None:
        rows = self._all("SELECT * FROM documents WHERE id=?", doc_id)
        return self._document(rows[0]) if rows else None

    def list_documents(self, tenant: str, collection: str) -> list[DocumentRecord]:
        rows = self._all(
            "SELECT * FROM documents WHERE tenant=? AND collection=? ORDER BY created_at, id",
            tenant,
            collection,
        )
        return [self._document(r) for r in rows]

    def pending(self) -> list[DocumentRecord]:
        rows = self._all(
            "SELECT * FROM documents WHERE status IN ('queued','processing') ORDER BY created_at"
        )
        return [self._document(r) for r in rows]

    def update(self, doc_id: str, **fields: Any) -> bool:
        """False when the row is gone (deleted while its job ran)."""
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k}=?" for k in fields)
        return self._exec(f"UPDATE documents SET {cols} WHERE id=?", *fields.values(), doc_id) == 1

    def delete_document(self, doc_id: str) -> bool:
        self.job_path(doc_id).unlink(missing_ok=True)
        return self._exec("DELETE FROM documents WHERE id=?", doc_id) == 1

    def finish_job(self, doc_id: str) -> None:
        self.job_path(doc_id).unlink(missing_ok=True)

    @staticmethod
    def _document(r: sqlite3.Row) -> DocumentRecord:
        return DocumentRecord(
            id=r["id"],
            tenant=r["tenant"],
            collection=r["collection"],
            filename=r["filename"],
            kind=r["kind"],
            sha256=r["sha256"],
            bytes=r["bytes"],
            status=r["status"],
            error=r["error"],
            chunks_total=r["chunks_total"],
            chunks_done=r["chunks_done"],
            metadata=json.loads(r["metadata"]),
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
