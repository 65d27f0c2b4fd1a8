"""Contract tests every VectorStore implementation must pass (parametrized over backends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nova.errors import ServiceUnavailable
from nova.rag.sparse import SparseEncoder
from nova.rag.vectorstore import ChunkPoint, StoreQuery, VectorStore

from .conftest import make_store

ENC = SparseEncoder()


def unit(*xs: float) -> list[float]:
    v = np.array(xs + (0.0,) * (8 - len(xs)), dtype=np.float32)
    return (v / np.linalg.norm(v)).tolist()


def chunk(
    tenant: str, collection: str, doc: str, i: int, text: str, dense: list[float], **meta: object
) -> ChunkPoint:
    return ChunkPoint(
        tenant=tenant,
        collection=collection,
        document_id=doc,
        chunk_index=i,
        text=text,
        dense=dense,
        sparse=ENC.encode_document(text),
        filename=f"{doc}.txt",
        metadata=dict(meta),
    )


@pytest.fixture
def filled(store: VectorStore) -> VectorStore:
    store.upsert(
        [
            chunk(
                "acme", "kb", "d1", 0, "The pump filter clogs when lint accumulates", unit(1, 0), lang="en"
            ),
            chunk("acme", "kb", "d1", 1, "Error code E24 means the drain is blocked", unit(0, 1), lang="en"),
            chunk("acme", "kb", "d2", 0, "Reset the controller by holding start for ten seconds", unit(1, 1)),
            chunk("acme", "other", "d3", 0, "Error code E24 in another collection", unit(0, 1)),
            chunk("globex", "kb", "d9", 0, "Error code E24 belongs to another tenant", unit(0, 1)),
        ]
    )
    return store


def q(**kw: object) -> StoreQuery:
    base: dict[str, object] = {"collections": ["kb"], "limit": 10, "prefetch_limit": 50}
    base.update(kw)
    return StoreQuery(**base)  # type: ignore[arg-type]


def test_dense_search_orders_by_cosine_and_returns_payload(filled: VectorStore) -> None:
    hits = filled.search("acme", q(mode="dense", dense=unit(0, 1)))
    assert [h.payload["document_id"] for h in hits][:1] == ["d1"]
    top = hits[0]
    assert top.payload["chunk_index"] == 1 and "E24" in top.payload["text"]
    assert top.payload["filename"] == "d1.txt" and top.payload["metadata"] == {"lang": "en"}
    assert top.score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits) == 3


def test_sparse_search_matches_terms_and_empty_query_returns_nothing(filled: VectorStore) -> None:
    hits = filled.search("acme", q(mode="sparse", sparse=ENC.encode_query("E24 drain")))
    assert len(hits) == 1 and hits[0].payload["chunk_index"] == 1
    assert filled.search("acme", q(mode="sparse", sparse=ENC.encode_query("the of and"))) == []


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_hybrid_fuses_both_retrievers(filled: VectorStore, fusion: str) -> None:
    # dense points at the reset chunk, sparse at the lint chunk: both must surface on top
    hits = filled.search(
        "acme", q(mode="hybrid", fusion=fusion, dense=unit(1, 1), sparse=ENC.encode_query("lint"), limit=2)
    )
    assert {(h.payload["document_id"], h.payload["chunk_index"]) for h in hits} == {("d2", 0), ("d1", 0)}


def test_hybrid_with_only_stopwords_falls_back_to_dense(filled: VectorStore) -> None:
    hits = filled.search("acme", q(mode="hybrid", dense=unit(1, 1), sparse=ENC.encode_query("the and")))
    assert hits[0].payload["document_id"] == "d2"


def test_tenant_isolation_on_search_count_and_delete(filled: VectorStore) -> None:
    for mode in ("dense", "sparse", "hybrid"):
        hits = filled.search(
            "acme",
            q(
                mode=mode,
                dense=unit(0, 1),
                sparse=ENC.encode_query("another tenant E24"),
                collections=["kb", "other"],
            ),
        )
        assert hits and all(h.payload["tenant"] == "acme" for h in hits)
        assert filled.search("nobody", q(mode=mode, dense=unit(0, 1), sparse=ENC.encode_query("E24"))) == []
    assert filled.count("globex", "kb") == 1
    filled.delete("acme", "kb")
    assert filled.count("acme", "kb") == 0
    assert filled.count("globex", "kb") == 1
    assert filled.count("acme", "other") == 1


def test_filters_collection_document_metadata(filled: VectorStore) -> None:
    both = filled.search("acme", q(mode="dense", dense=unit(0, 1), collections=["kb", "other"]))
    assert {h.payload["collection"] for h in both} == {"kb", "other"}
    only_d2 = filled.search(
        "acme", q(mode="hybrid", dense=unit(0, 1), sparse=ENC.encode_query("E24"), document_ids=["d2"])
    )
    assert {h.payload["document_id"] for h in only_d2} == {"d2"}
    en = filled.search("acme", q(mode="dense", dense=unit(1, 1), metadata={"lang": "en"}))
    assert {h.payload["document_id"] for h in en} == {"d1"} and len(en) == 2


def test_min_score_and_top_k(filled: VectorStore) -> None:
    hits = filled.search("acme", q(mode="dense", dense=unit(0, 1), min_score=0.9))
    assert len(hits) == 1
    assert len(filled.search("acme", q(mode="dense", dense=unit(0, 1), limit=2))) == 2


def test_delete_document_removes_only_its_chunks_and_upsert_is_idempotent(filled: VectorStore) -> None:
    assert filled.count("acme", "kb", "d1") == 2
    filled.upsert([chunk("acme", "kb", "d1", 0, "The pump filter clogs when lint accumulates", unit(1, 0))])
    assert filled.count("acme", "kb", "d1") == 2
    filled.delete("acme", "kb", "d1")
    assert filled.count("acme", "kb", "d1") == 0
    assert filled.count("acme", "kb", "d2") == 1


def test_data_survives_reopen_and_dimension_is_checked(store_kind: str, tmp_path: Path) -> None:
    s = make_store(store_kind, tmp_path)
    s.ensure(8)
    s.upsert([chunk("acme", "kb", "d1", 0, "persisted text", unit(1))])
    s.optimize()
    s.close()
    again = make_store(store_kind, tmp_path)
    again.ensure(8)
    assert again.count("acme", "kb") == 1
    again.close()
    wrong = make_store(store_kind, tmp_path)
    with pytest.raises(ServiceUnavailable):
        wrong.ensure(16)


def test_shipped_collection_schema_matches_code(tmp_path: Path) -> None:
    """vector-db/collection.json documents what QdrantStore.ensure creates."""
    import json

    from nova.rag.qdrant_store import QdrantStore

    schema = json.loads((Path(__file__).resolve().parents[3] / "vector-db" / "collection.json").read_text())
    store = QdrantStore(collection=schema["name"], path=tmp_path / "q")
    store.ensure(schema["vectors"]["dense"]["size"])
    info = store._client.get_collection(schema["name"]).config.params
    store.close()
    assert set(info.vectors) == set(schema["vectors"])  # type: ignore[arg-type]
    dense = info.vectors["dense"]  # type: ignore[index]
    assert dense.size == 768 and dense.distance.value == schema["vectors"]["dense"]["distance"]
    assert set(info.sparse_vectors or {}) == set(schema["sparse_vectors"])
    assert info.sparse_vectors["sparse"].modifier.value == schema["sparse_vectors"]["sparse"]["modifier"]  # type: ignore[index,union-attr]
    assert set(schema["payload"]) == set(
        ChunkPoint("t", "c", "d", 0, "x", [0.0], ENC.encode_document("x")).payload()
    )


def test_unreachable_qdrant_server_is_a_clear_503() -> None:
    from nova.rag.qdrant_store import QdrantStore

    store = QdrantStore(collection="c", url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(ServiceUnavailable):
        store.ensure(8)
    with pytest.raises(ServiceUnavailable) as info:
        store.search("acme", q(mode="dense", dense=unit(1)))
    assert info.value.status == 503 and info.value.code == "vector_store_unavailable"
    with pytest.raises(ServiceUnavailable):
        store.upsert([chunk("acme", "kb", "d", 0, "x", unit(1))])
    store.close()


def test_edge_optimises_out_of_process_and_replays_concurrent_writes(tmp_path: Path) -> None:
    import threading
    import time

    from nova.rag.edge_store import EdgeStore

    store = EdgeStore(tmp_path / "edge")
    store.ensure(8)
    rng = np.random.default_rng(3)
    store.upsert(
        [
            chunk("acme", "kb", f"d{i}", 0, f"bulk text {i}", list(map(float, rng.standard_normal(8))))
            for i in range(300)
        ]
    )
    worker = threading.Thread(target=store.optimize)
    worker.start()
    deadline = time.monotonic() + 60
    while store._replay is None:  # the copy is taken; the child process is optimising it
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.001)
    store.upsert([chunk("acme", "kb", "late", 0, "written during optimisation zebra", unit(1))])
    store.delete("acme", "kb", "d0")
    assert store.count("acme", "kb") == 300  # served from the live shard meanwhile
    worker.join(120)
    assert not worker.is_alive()
    assert store.count("acme", "kb") == 300 and store.count("acme", "kb", "d0") == 0
    hits = store.search("acme", q(mode="sparse", sparse=ENC.encode_query("zebra")))
    assert [h.payload["document_id"] for h in hits] == ["late"]
    assert not (tmp_path / "edge.optimizing").exists() and not (tmp_path / "edge.old").exists()
    store.close()
    # a crash between the swap renames leaves only edge.old: the next open restores it
    (tmp_path / "edge").rename(tmp_path / "edge.old")
    again = EdgeStore(tmp_path / "edge")
    again.ensure(8)
    assert again.count("acme", "kb") == 300
    again.close()
