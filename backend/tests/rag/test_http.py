"""The rag service HTTP app and ``RagHttpClient``: the same scenario runs against the in-process
service and through the client + app, so both implement one contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from nova.errors import BadRequest, NotFound, PayloadTooLarge, ServiceUnavailable, Unauthorized, Unprocessable
from nova.rag.backend import RagBackend
from nova.rag.client import RagHttpClient
from nova.rag.schemas import CollectionIn, SearchRequest
from nova.rag.service import RagService
from nova.rag.service_app import create_rag_app

DOC = (
    b"# Oven\n\n## Error E3\n\nE3 on the BX-90 oven means the door lock motor failed."
    b"\n\n## Preheat\n\nPreheat takes 12 minutes."
)


@pytest.fixture(params=["inprocess", "http"])
async def backend(request: pytest.FixtureRequest, service: RagService) -> AsyncIterator[RagBackend]:
    if request.param == "inprocess":
        yield service
        return
    app = create_rag_app(service.settings, service)
    client = RagHttpClient("http://rag", transport=httpx.ASGITransport(app=app))
    yield client
    await client.close()


async def test_backend_contract(backend: RagBackend, service: RagService) -> None:
    coll = await backend.put_collection(
        "acme", "kb", CollectionIn(description="ovens", metadata={"team": "x"})
    )
    assert coll.id == "kb" and coll.description == "ovens" and coll.documents == 0
    doc = await backend.add_document(
        "acme", "kb", "oven.md", DOC, content_type="text/markdown", metadata={"v": 2}, wait=True
    )
    assert doc.status == "ready" and doc.metadata == {"v": 2} and doc.chunks_total > 0
    dup = await backend.add_document("acme", "kb", "again.md", DOC)
    assert dup.deduplicated and dup.id == doc.id
    queued = await backend.add_document("acme", "kb", "n.txt", b"Descale the kettle monthly.")
    assert await asyncio.to_thread(service.wait_idle, 60)
    assert (await backend.get_document("acme", "kb", queued.id)).status == "ready"
    assert {d.id for d in await backend.list_documents("acme", "kb")} == {doc.id, queued.id}
    assert [c.id for c in await backend.list_collections("acme")] == ["kb"]
    assert (await backend.get_collection("acme", "kb")).documents == 2

    res = await backend.search("acme", SearchRequest(query="BX-90 E3 door lock", collections=["kb"], top_k=2))
    assert res.hits[0].document_id == doc.id and res.hits[0].heading == "Oven > Error E3"
    emb = await backend.embed(["hello", "world"], "query")
    assert emb.dim == 384 and len(emb.embeddings) == 2 and emb.tokens > 0
    messages, citations = await backend.augment_chat(
        [{"role": "user", "content": "What does E3 mean on the BX-90?"}],
        {"collections": ["kb"], "top_k": 1},
        "acme",
    )
    assert citations[0].document_id == doc.id and "door lock motor" in messages[0]["content"]

    with pytest.raises(NotFound):
        await backend.get_collection("globex", "kb")
    with pytest.raises(NotFound):
        await backend.search("globex", SearchRequest(query="E3", collections=["kb"]))
    with pytest.raises(Unprocessable):
        await backend.add_document("acme", "kb", "x.pdf", b"%PDF-1.4 not really")
    with pytest.raises(BadRequest):
        await backend.add_document("acme", "kb", "e.txt", b"")
    with pytest.raises(BadRequest):
        await backend.rerank("q", ["a"])  # no reranker configured

    await backend.delete_document("acme", "kb", doc.id)
    assert service.store.count("acme", "kb", doc.id) == 0
    await backend.delete_collection("acme", "kb")
    with pytest.raises(NotFound):
        await backend.list_documents("acme", "kb")


@pytest.fixture
async def http(service: RagService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_rag_app(service.settings, service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rag") as c:
        yield c


async def test_status_codes_and_error_shape(http: httpx.AsyncClient, service: RagService) -> None:
    h = {"x-nova-tenant": "acme"}
    assert (await http.get("/healthz")).json()["store"] == "edge"
    assert (await http.put("/collections/kb", json={}, headers=h)).status_code == 200
    r = await http.post("/collections/kb/documents", files={"file": ("a.txt", b"alpha beta")}, headers=h)
    assert r.status_code == 202 and r.json()["status"] in ("queued", "processing", "ready")
    r = await http.post("/collections/kb/documents?wait=true", files={"file": ("b.txt", b"gamma")}, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "ready"
    r = await http.post("/collections/kb/documents", files={"file": ("b2.txt", b"gamma")}, headers=h)
    assert r.status_code == 200 and r.json()["deduplicated"] is True
    r = await http.get("/collections", headers={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "X-Nova-Tenant"
    r = await http.post("/search", json={"query": "x", "collections": ["kb"], "top_k": 1000}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["param"] == "top_k"
    r = await http.post("/collections/kb/documents", files={"file": ("big.txt", b"x" * 300_000)}, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = await http.post(
        "/collections/kb/documents", files={"file": ("m.txt", b"meta")}, data={"metadata": "[1]"}, headers=h
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "metadata"
    r = await http.get("/collections/nope/documents", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await http.delete("/collections/kb", headers=h)).status_code == 204
    assert await asyncio.to_thread(service.wait_idle, 60)
    assert "nova_rag_search_duration_seconds" in (await http.get("/metrics")).text


async def test_service_token_is_enforced(service: RagService, rag_settings: Any) -> None:
    settings = rag_settings.model_copy(update={"rag_service_token": SecretStr("s3cret")})
    app = create_rag_app(settings, service)
    transport = httpx.ASGITransport(app=app)
    bad = RagHttpClient("http://rag", token="wrong", transport=transport)
    with pytest.raises(Unauthorized):
        await bad.list_collections("acme")
    good = RagHttpClient("http://rag", token="s3cret", transport=transport)
    assert await good.list_collections("acme") == []
    await bad.close()
    await good.close()


async def test_client_reports_unreachable_service() -> None:
    client = RagHttpClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ServiceUnavailable):
        await client.list_collections("acme")
    await client.close()


async def test_client_maps_large_upload_error(backend: RagBackend) -> None:
    await backend.put_collection("acme", "kb", CollectionIn())
    with pytest.raises(PayloadTooLarge):
        await backend.add_document("acme", "kb", "big.txt", b"x" * 300_000)
