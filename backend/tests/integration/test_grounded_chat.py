"""Grounded chat through the gateway: retrieve, inject sources as data, cite — streamed and not;
collections are per tenant; `/v1/embeddings` is served by the embedder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway import ADMIN_KEY, GatewayServer

pytestmark = pytest.mark.rag

DOC = (
    "# Dishwasher DW-5520\n\nError E24 means the drain pump is blocked. Clean the filter under the "
    "lower basket and check the drain hose for kinks.\n\n## Warranty\n\nTwo years on parts."
)


@pytest.fixture
def rag_gateway(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> GatewayServer:
    gw = gateway_factory({"fake-model": {"deployments": [{"base_url": fake.base_url}]}}, rag_enabled=True)
    r = httpx.post(f"{gw.url}/v1/collections", headers=admin_headers, json={"id": "manuals"})
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{gw.url}/v1/collections/manuals/documents?wait=true",
        headers=admin_headers,
        files={"file": ("dw5520.md", DOC.encode(), "text/markdown")},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    return gw


def test_non_streamed_answer_carries_citations_and_sources_reach_model(
    rag_gateway: GatewayServer, fake: FakeUpstream
) -> None:
    c = openai.OpenAI(base_url=f"{rag_gateway.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    r = c.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "What does error E24 mean on my DW-5520?"}],
        extra_body={"rag": {"collections": ["manuals"], "top_k": 3}},
    )
    citations = r.model_extra["nova"]["citations"]  # type: ignore[index]
    assert citations and citations[0]["filename"] == "dw5520.md"
    assert "drain pump" in " ".join(c["snippet"] for c in citations)
    sent = fake.stats.recorded[-1].body
    assert "rag" not in sent
    prompt = json.dumps(sent["messages"])
    assert "drain pump is blocked" in prompt  # the retrieved source went to the model, as data
    assert sent["messages"][-1]["content"].endswith("What does error E24 mean on my DW-5520?") or any(
        "E24" in m["content"] for m in sent["messages"]
    )


def test_streamed_answer_has_citations_on_first_chunk(
    rag_gateway: GatewayServer, admin_headers: dict[str, str]
) -> None:
    r = httpx.post(
        f"{rag_gateway.url}/v1/chat/completions",
        headers=admin_headers,
        json={
            "model": "fake-model",
            "stream": True,
            "messages": [{"role": "user", "content": "E24 drain pump DW-5520"}],
            "rag": {"collections": ["manuals"]},
        },
    )
    events = [e[6:] for e in r.text.split("\n\n") if e.startswith("data: ")]
    first = json.loads(events[0])
    assert first["nova"]["citations"][0]["document_id"]
    assert all("nova" not in json.loads(e) for e in events[1:-1])
    assert events[-1] == "[DONE]"


def test_unknown_collection_and_rag_disabled(
    rag_gateway: GatewayServer,
    fake: FakeUpstream,
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "x"}],
        "rag": {"collections": ["nope"]},
    }
    r = httpx.post(f"{rag_gateway.url}/v1/chat/completions", headers=admin_headers, json=body)
    assert r.status_code == 404, r.text
    plain = gateway_factory({"fake-model": {"deployments": [{"base_url": fake.base_url}]}})
    r = httpx.post(f"{plain.url}/v1/chat/completions", headers=admin_headers, json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "rag"
    assert fake.stats.requests == 0


def test_embeddings_endpoint(rag_gateway: GatewayServer) -> None:
    c = openai.OpenAI(base_url=f"{rag_gateway.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    r = c.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input=["hello", "world"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 384


def test_embeddings_are_rate_limited_and_metered(
    rag_gateway: GatewayServer, admin_headers: dict[str, str]
) -> None:
    """Embeddings count against the key's limits (x-ratelimit-* headers, 429 over the limit) and
    leave usage events with their token counts, like chat."""
    model = "sentence-transformers/all-MiniLM-L6-v2"
    user = httpx.post(f"{rag_gateway.url}/admin/users", headers=admin_headers, json={"username": "emb-user"})
    assert user.status_code == 201, user.text
    key = httpx.post(
        f"{rag_gateway.url}/admin/keys",
        headers=admin_headers,
        json={"user_id": user.json()["id"], "requests_per_minute": 2},
    ).json()["key"]
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": model, "input": ["hello world", "the dishwasher shows E24"]}
    first = httpx.post(f"{rag_gateway.url}/v1/embeddings", headers=auth, json=body, timeout=60)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    tokens = first.json()["usage"]["prompt_tokens"]
    assert tokens > 0
    assert (
        httpx.post(f"{rag_gateway.url}/v1/embeddings", headers=auth, json=body, timeout=60).status_code == 200
    )
    over = httpx.post(f"{rag_gateway.url}/v1/embeddings", headers=auth, json=body, timeout=60)
    assert over.status_code == 429 and "retry-after" in over.headers
    for _ in range(100):  # usage events are written in batches off the response path
        rows = httpx.get(f"{rag_gateway.url}/v1/usage?group_by=model", headers=auth).json()["data"]
        row = next((r for r in rows if r["model"] == model), None)
        if row is not None and row["requests"] == 3:
            break
        time.sleep(0.05)
    assert row is not None and row["requests"] == 3 and row["errors"] == 1
    assert row["prompt_tokens"] == 2 * tokens
