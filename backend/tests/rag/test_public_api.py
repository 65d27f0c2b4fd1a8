"""Public ``/v1/collections`` and ``/v1/embeddings`` routers on a real FastAPI app with the
in-process RAG service; callers authenticate as different users (tenants)."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request

from nova.api import collections, embeddings
from nova.api.deps import get_principal
from nova.api.errors import install_error_handlers
from nova.errors import Unauthorized
from nova.identity.principal import Principal
from nova.limits.admission import Unlimited
from nova.llm.pool import UpstreamPool
from nova.llm.relay import Relay
from nova.llm.serving import CompletionService
from nova.rag.service import RagService
from nova.store.usage import UsageEvent


async def fake_principal(request: Request) -> Principal:
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise Unauthorized("no key")
    return Principal(user_id=token, role="user")


class UsageLog(list[UsageEvent]):
    def record(self, event: UsageEvent) -> None:
        self.append(event)


@pytest.fixture
def usage() -> UsageLog:
    return UsageLog()


@pytest.fixture
async def api(service: RagService, usage: UsageLog) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.settings = service.settings
    app.state.rag = service
    pool = UpstreamPool(service.settings)  # embeddings use admission and usage, never the pool
    app.state.completions = CompletionService(
        pool, Relay(pool, service.settings), Unlimited(), usage, service.settings
    )
    install_error_handlers(app)
    app.include_router(collections.router)
    app.include_router(embeddings.router)
    app.dependency_overrides[get_principal] = fake_principal
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://nova") as c:
        yield c


ALICE = {"authorization": "Bearer alice"}
BOB = {"authorization": "Bearer bob"}


async def test_collections_lifecycle_and_tenant_checks(api: httpx.AsyncClient, service: RagService) -> None:
    r = await api.post("/v1/collections", json={"id": "manuals", "description": "d"}, headers=ALICE)
    assert r.status_code == 201 and r.json()["object"] == "collection" and r.json()["id"] == "manuals"
    assert (await api.post("/v1/collections", json={"id": "manuals"}, headers=ALICE)).status_code == 409
    assert (await api.post("/v1/collections", json={"id": "bad id"}, headers=ALICE)).status_code == 400
    assert (await api.post("/v1/collections", json={"id": "manuals"}, headers=BOB)).status_code == 201

    files = {"file": ("oven.md", b"# Oven\n\nError E3 means the door lock motor failed.", "text/markdown")}
    r = await api.post(
        "/v1/collections/manuals/documents?wait=true",
        files=files,
        data={"metadata": '{"v": 1}'},
        headers=ALICE,
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["status"] == "ready" and doc["metadata"] == {"v": 1}
    r = await api.post(
        "/v1/collections/manuals/documents", files={"file": ("n.txt", b"kettle descaling")}, headers=ALICE
    )
    assert r.status_code == 202
    assert await asyncio.to_thread(service.wait_idle, 60)

    listed = (await api.get("/v1/collections/manuals/documents", headers=ALICE)).json()
    assert listed["object"] == "list" and len(listed["data"]) == 2
    assert (await api.get("/v1/collections/manuals/documents", headers=BOB)).json()["data"] == []
    assert (await api.get(f"/v1/collections/manuals/documents/{doc['id']}", headers=BOB)).status_code == 404
    assert (
        await api.delete(f"/v1/collections/manuals/documents/{doc['id']}", headers=BOB)
    ).status_code == 404

    r = await api.post(
        "/v1/collections/manuals/search", json={"query": "what is E3", "top_k": 1}, headers=ALICE
    )
    assert r.status_code == 200 and r.json()["data"][0]["document_id"] == doc["id"]
    r = await api.post("/v1/collections/manuals/search", json={"query": "what is E3"}, headers=BOB)
    assert r.status_code == 200 and r.json()["data"] == []
    r = await api.post("/v1/collections/nope/search", json={"query": "x"}, headers=ALICE)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    assert [c["id"] for c in (await api.get("/v1/collections", headers=ALICE)).json()["data"]] == ["manuals"]
    r = await api.delete(f"/v1/collections/manuals/documents/{doc['id']}", headers=ALICE)
    assert r.json() == {"id": doc["id"], "object": "collection.document.deleted", "deleted": True}
    assert (await api.delete("/v1/collections/manuals", headers=ALICE)).json()["deleted"] is True
    assert (await api.get("/v1/collections/manuals", headers=ALICE)).status_code == 404
    assert (await api.get("/v1/collections/manuals", headers=BOB)).status_code == 200
    assert (await api.get("/v1/collections", headers={})).status_code == 401


async def test_upload_errors(api: httpx.AsyncClient) -> None:
    await api.post("/v1/collections", json={"id": "kb"}, headers=ALICE)
    cases = [
        ({"file": ("e.txt", b"")}, None, 400, "empty_file"),
        ({"file": ("x.pdf", b"%PDF-1.4 junk")}, None, 422, "corrupt_file"),
        ({"file": ("x.docx", b"PK\x03\x04")}, None, 422, "unsupported_file_type"),
        ({"file": ("big.txt", b"a" * 300_000)}, None, 413, "payload_too_large"),
        ({"file": ("m.txt", b"ok")}, {"metadata": "not json"}, 400, None),
    ]
    for files, data, status, code in cases:
        r = await api.post("/v1/collections/kb/documents", files=files, data=data, headers=ALICE)
        assert r.status_code == status, (files, r.text)
        assert r.json()["error"]["code"] == code
    r = await api.post("/v1/collections/missing/documents", files={"file": ("a.txt", b"x")}, headers=ALICE)
    assert r.status_code == 404


async def test_embeddings_openai_compatible(
    api: httpx.AsyncClient, service: RagService, usage: UsageLog
) -> None:
    r = await api.post(
        "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["hello", "world"]}, headers=ALICE
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    vec = np.array(body["data"][0]["embedding"], dtype=np.float32)
    assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-3
    assert body["usage"]["prompt_tokens"] > 0
    assert [(e.route, e.user_id, e.status, e.prompt_tokens) for e in usage] == [
        ("embeddings", "alice", 200, body["usage"]["prompt_tokens"])
    ]
    expected = service.embedder.embed_documents(["hello"])[0]
    assert np.allclose(vec, expected, atol=1e-5)

    r = await api.post(
        "/v1/embeddings",
        json={
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "input": "hello",
            "encoding_format": "base64",
        },
        headers=ALICE,
    )
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert np.allclose(np.array(struct.unpack("<384f", raw)), vec, atol=1e-6)

    for body, status in [
        ({"model": "text-embedding-3-small", "input": "x"}, 404),
        ({"model": "all-MiniLM-L6-v2", "input": []}, 400),
        ({"model": "all-MiniLM-L6-v2", "input": [1, 2, 3]}, 400),
        ({"model": "all-MiniLM-L6-v2", "input": ""}, 400),
        ({"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 128}, 400),
    ]:
        r = await api.post("/v1/embeddings", json=body, headers=ALICE)
        assert r.status_code == status, (body, r.text)
        assert "error" in r.json()


async def test_openai_sdk_embeddings(api: httpx.AsyncClient) -> None:
    """The official SDK (base64 by default) decodes our response."""
    from openai import AsyncOpenAI

    transport = api._transport  # the ASGI app
    client = AsyncOpenAI(
        api_key="alice", base_url="http://nova/v1", http_client=httpx.AsyncClient(transport=transport)
    )
    res = await client.embeddings.create(model="all-MiniLM-L6-v2", input=["grounded answers"])
    assert len(res.data[0].embedding) == 384 and res.usage.total_tokens > 0
    await client.close()
