"""RagService end to end on the real embedder and the embedded vector store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nova.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable
from nova.rag.schemas import CollectionIn, SearchRequest
from nova.rag.service import RagService
from nova.rag.vectorstore import ChunkPoint

from .pdfgen import make_pdf

DRYER = (
    "# KX-310 dryer\n\n## Error F07\n\n"
    "The KX-310 shows F07 when the exhaust duct is blocked and the drum overheats. "
    "Clean the lint screen and check the vent hose for kinks.\n\n## Damp laundry\n\n"
    "If clothes are still wet after a full program, "
    "the moisture sensor bars are coated with fabric softener residue."
)
FORMATS: dict[str, tuple[str, bytes, str]] = {
    "txt": (
        "notes.txt",
        b"The espresso grinder needs burr cleaning every two weeks.\n\nUse a dry brush.",
        "burr cleaning",
    ),
    "md": ("dryer.md", DRYER.encode(), "clothes still wet moisture sensor"),
    "html": (
        "page.html",
        b"<html><body><h1>Fridge</h1>"
        b"<p>Ice maker stops producing cubes when the water filter is clogged.</p></body></html>",
        "ice maker no cubes",
    ),
    "pdf": (
        "manual.pdf",
        make_pdf([["Heat pump defrost cycle runs every 90 minutes."], ["Page two: refrigerant R32."]]),
        "defrost cycle",
    ),
}


async def coll(svc: RagService, tenant: str = "acme", cid: str = "kb") -> None:
    await svc.put_collection(tenant, cid, CollectionIn(description="test"))


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_ingest_each_format_then_search(service: RagService, fmt: str) -> None:
    name, data, query = FORMATS[fmt]
    await coll(service)
    doc = await service.add_document("acme", "kb", name, data, metadata={"source": fmt}, wait=True)
    assert doc.status == "ready" and doc.kind == fmt and doc.progress == 1.0
    assert doc.chunks_total == doc.chunks_done == service.store.count("acme", "kb", doc.id) > 0
    res = await service.search("acme", SearchRequest(query=query, collections=["kb"], top_k=3))
    assert res.hits[0].document_id == doc.id and res.hits[0].filename == name
    assert res.hits[0].metadata == {"source": fmt}
    assert not res.reranked


async def test_background_job_reports_progress_and_dedupes(service: RagService) -> None:
    await coll(service)
    doc = await service.add_document("acme", "kb", "dryer.md", DRYER.encode())
    assert doc.status in ("queued", "processing", "ready")
    assert await asyncio.to_thread(service.wait_idle, 60)
    ready = await service.get_document("acme", "kb", doc.id)
    assert ready.status == "ready" and ready.chunks_done == ready.chunks_total > 0
    dup = await service.add_document("acme", "kb", "copy.md", DRYER.encode())
    assert dup.deduplicated and dup.id == doc.id
    assert [d.id for d in await service.list_documents("acme", "kb")] == [doc.id]
    assert (await service.get_collection("acme", "kb")).documents == 1


async def test_delete_document_and_collection_remove_chunks(service: RagService) -> None:
    await coll(service)
    a = await service.add_document("acme", "kb", "a.md", DRYER.encode(), wait=True)
    b = await service.add_document("acme", "kb", "b.txt", FORMATS["txt"][1], wait=True)
    await service.delete_document("acme", "kb", a.id)
    assert service.store.count("acme", "kb", a.id) == 0
    assert service.store.count("acme", "kb", b.id) > 0
    with pytest.raises(NotFound):
        await service.get_document("acme", "kb", a.id)
    await service.delete_collection("acme", "kb")
    assert service.store.count("acme", "kb") == 0
    with pytest.raises(NotFound):
        await service.list_documents("acme", "kb")


async def test_failed_document_leaves_no_chunks(service: RagService, monkeypatch: pytest.MonkeyPatch) -> None:
    await coll(service)
    long_text = "\n\n".join(
        f"Paragraph {i} about valve {i} and pump pressure in stage {i}." * 3 for i in range(200)
    )
    real_upsert = service.store.upsert
    calls = {"n": 0}

    def flaky(points: list[ChunkPoint]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real_upsert(points)

    monkeypatch.setattr(service.store, "upsert", flaky)
    doc = await service.add_document("acme", "kb", "long.txt", long_text.encode(), wait=True)
    assert calls["n"] == 2, "the document must span several upsert batches"
    assert doc.status == "failed" and "disk full" in (doc.error or "")
    assert service.store.count("acme", "kb", doc.id) == 0
    # a failed document does not block a retry of the same content
    monkeypatch.setattr(service.store, "upsert", real_upsert)
    again = await service.add_document("acme", "kb", "long.txt", long_text.encode(), wait=True)
    assert again.id != doc.id and again.status == "ready"


async def test_bad_input_errors(service: RagService) -> None:
    with pytest.raises(NotFound):
        await service.add_document("acme", "missing", "a.txt", b"x")
    with pytest.raises(NotFound):
        await service.search("acme", SearchRequest(query="x", collections=["missing"]))
    with pytest.raises(BadRequest):
        await service.put_collection("acme", "bad id!", CollectionIn())
    await coll(service)
    with pytest.raises(PayloadTooLarge):
        await service.add_document("acme", "kb", "big.txt", b"a" * 200_001)
    with pytest.raises(BadRequest):
        await service.add_document("acme", "kb", "empty.txt", b"")
    with pytest.raises(Unprocessable):
        await service.add_document("acme", "kb", "bad.pdf", b"%PDF-1.4 broken")
    with pytest.raises(Unprocessable):
        await service.add_document("acme", "kb", "x.exe", b"MZ\x90\x00")
    with pytest.raises(BadRequest):
        await service.add_document("acme", "kb", "m.txt", b"ok", metadata={"nested": {"a": 1}})
    assert await service.list_documents("acme", "kb") == []


async def test_tenant_isolation(service: RagService) -> None:
    await coll(service, "acme")
    await coll(service, "globex")
    a = await service.add_document("acme", "kb", "dryer.md", DRYER.encode(), wait=True)
    b = await service.add_document("globex", "kb", "notes.txt", FORMATS["txt"][1], wait=True)
    assert [c.id for c in await service.list_collections("acme")] == ["kb"]
    with pytest.raises(NotFound):
        await service.get_document("globex", "kb", a.id)
    with pytest.raises(NotFound):
        await service.delete_document("globex", "kb", a.id)
    res = await service.search(
        "globex", SearchRequest(query="KX-310 F07 dryer overheats", collections=["kb"], top_k=10)
    )
    assert {h.document_id for h in res.hits} == {b.id}
    await coll(service, "initech", "private")
    with pytest.raises(NotFound):
        await service.search("acme", SearchRequest(query="x", collections=["private"]))
    await service.delete_collection("globex", "kb")
    assert service.store.count("acme", "kb", a.id) > 0


async def test_search_filters_modes_and_min_score(service: RagService) -> None:
    await coll(service)
    d1 = await service.add_document(
        "acme", "kb", "dryer.md", DRYER.encode(), metadata={"team": "laundry"}, wait=True
    )
    await service.add_document(
        "acme", "kb", "notes.txt", FORMATS["txt"][1], metadata={"team": "coffee"}, wait=True
    )
    for mode in ("dense", "sparse", "hybrid"):
        res = await service.search(
            "acme", SearchRequest(query="F07 overheating", collections=["kb"], mode=mode)
        )
        assert res.hits[0].document_id == d1.id and res.mode == mode
    coffee = await service.search(
        "acme",
        SearchRequest(query="F07 overheating", collections=["kb"], metadata={"team": "coffee"}, mode="dense"),
    )
    assert coffee.hits and all(h.metadata["team"] == "coffee" for h in coffee.hits)
    only = await service.search("acme", SearchRequest(query="burr", collections=["kb"], document_ids=[d1.id]))
    assert {h.document_id for h in only.hits} <= {d1.id}
    strict = await service.search(
        "acme", SearchRequest(query="F07 overheating", collections=["kb"], mode="dense", min_score=0.99)
    )
    assert strict.hits == []
    with pytest.raises(BadRequest):
        await service.search("acme", SearchRequest(query="x", collections=["kb"], rerank=True))


async def test_jobs_resume_after_restart(rag_settings: Any, embedder: Any) -> None:
    first = RagService(rag_settings, embedder=embedder)
    await first.start()
    await first.put_collection("acme", "kb", CollectionIn())
    # an accepted upload the worker never got to, and one interrupted half-way
    queued = first.journal.add_document("acme", "kb", "q.md", "md", "h1", 10, {}, DRYER)
    half = first.journal.add_document("acme", "kb", "h.txt", "txt", "h2", 10, {}, FORMATS["txt"][1].decode())
    first.journal.update(half.id, status="processing", chunks_total=3, chunks_done=1)
    emb = embedder.embed_documents(["stale"])[0].tolist()
    stale = ChunkPoint(
        "acme", "kb", half.id, 7, "stale partial chunk", emb, first.sparse.encode_document("stale")
    )
    first.store.upsert([stale])
    await first.close()

    second = RagService(rag_settings, embedder=embedder)
    await second.start()
    try:
        assert await asyncio.to_thread(second.wait_idle, 60)
        for doc_id in (queued.id, half.id):
            doc = await second.get_document("acme", "kb", doc_id)
            assert doc.status == "ready"
            assert second.store.count("acme", "kb", doc_id) == doc.chunks_total
        res = await second.search(
            "acme", SearchRequest(query="stale partial chunk", collections=["kb"], mode="sparse")
        )
        assert all(h.chunk_index != 7 for h in res.hits if h.document_id == half.id)
        assert second.journal.pending() == []
        assert not any(second.journal.jobs_dir.iterdir())
    finally:
        await second.close()


async def test_concurrent_searches_while_ingesting(service: RagService) -> None:
    """Queries from many threads interleave with an ingestion job (shared embedder and store)."""
    await coll(service)
    await service.add_document("acme", "kb", "dryer.md", DRYER.encode(), wait=True)
    long_text = "\n\n".join(
        f"Section {i}: the condenser coil {i} needs cleaning every {i} months." for i in range(150)
    )
    job = await service.add_document("acme", "kb", "long.txt", long_text.encode())
    results = await asyncio.gather(
        *(
            service.search("acme", SearchRequest(query=f"F07 overheating {i}", collections=["kb"]))
            for i in range(12)
        ),
        *(service.embed([f"text {i}", "more"], "query") for i in range(6)),
    )
    assert all(r.hits for r in results[:12])  # type: ignore[union-attr]
    assert await asyncio.to_thread(service.wait_idle, 120)
    assert (await service.get_document("acme", "kb", job.id)).status == "ready"


async def test_close_mid_job_leaves_it_queued_for_the_next_start(rag_settings: Any, embedder: Any) -> None:
    first = RagService(rag_settings, embedder=embedder)
    await first.start()
    await first.put_collection("acme", "kb", CollectionIn())
    text = "\n\n".join(f"Paragraph {i}: the heat exchanger {i} is flushed yearly." * 4 for i in range(160))
    stop_after_first_batch = first.store.upsert

    def upsert_then_stop(points: list[ChunkPoint]) -> None:
        stop_after_first_batch(points)
        first._stopping.set()  # what close() does, timed to land mid-document

    first.store.upsert = upsert_then_stop  # type: ignore[method-assign]
    doc = await first.add_document("acme", "kb", "big.txt", text.encode(), wait=True)
    assert doc.status == "queued" and first.journal.job_path(doc.id).exists()
    await first.close()

    second = RagService(rag_settings, embedder=embedder)
    await second.start()
    try:
        assert await asyncio.to_thread(second.wait_idle, 180)
        done = await second.get_document("acme", "kb", doc.id)
        assert done.status == "ready" and second.store.count("acme", "kb", doc.id) == done.chunks_total > 64
    finally:
        await second.close()


async def test_one_service_per_data_dir(service: RagService, rag_settings: Any, embedder: Any) -> None:
    from nova.errors import ServiceUnavailable

    other = RagService(rag_settings, embedder=embedder)
    with pytest.raises(ServiceUnavailable) as info:
        await other.start()
    assert "NOVA_RAG_URL" in info.value.message
    other.journal.close()


async def test_worker_builds_indexes_after_a_burst_of_writes(
    service: RagService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nova.rag.service as service_module

    monkeypatch.setattr(service_module, "OPTIMIZE_AFTER_CHUNKS", 1)
    calls: list[int] = []
    real = service.store.optimize

    def spy() -> None:
        calls.append(1)
        real()

    monkeypatch.setattr(service.store, "optimize", spy)
    await coll(service)
    doc = await service.add_document("acme", "kb", "dryer.md", DRYER.encode(), wait=True)
    assert await asyncio.to_thread(service.wait_idle, 120)
    assert calls == [1]
    res = await service.search("acme", SearchRequest(query="F07", collections=["kb"], mode="sparse"))
    assert res.hits[0].document_id == doc.id  # served by the swapped-in, optimised shard
