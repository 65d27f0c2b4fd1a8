"""The relay's normal path: non-streamed and streamed answers, passthrough, usage, headers."""

from __future__ import annotations

import json

import httpx

from tests.fakes.upstream import Behavior, FakeUpstream, token_text
from tests.gateway import GatewayServer


def sse_events(text: str) -> list[str]:
    return [e[len("data: ") :] for e in text.split("\n\n") if e.startswith("data: ")]


def test_chat_non_stream(gateway: GatewayServer, fake: FakeUpstream, admin_headers: dict[str, str]) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={**admin_headers, "x-request-id": "req-abc-1"},
        json={"model": "fake-model", "messages": [{"role": "user", "content": "hello there"}], "seed": 7},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "".join(token_text(i) for i in range(8))
    assert body["usage"]["completion_tokens"] == 8
    assert r.headers["x-request-id"] == "req-abc-1"
    rec = fake.stats.recorded[-1]
    assert rec.headers["x-request-id"] == "req-abc-1"
    assert rec.body["seed"] == 7


def test_alias_rewrites_model(
    gateway: GatewayServer, fake: FakeUpstream, admin_headers: dict[str, str]
) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers=admin_headers,
        json={"model": "nano", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200
    assert fake.stats.recorded[-1].body["model"] == "fake-model"


def test_stream_passthrough_and_usage_strip(
    gateway: GatewayServer, fake: FakeUpstream, admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(tokens=5)
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers=admin_headers,
        json={"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        text = r.read().decode()
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == "".join(token_text(i) for i in range(5))
    # the gateway asked upstream for usage but the client did not: no usage chunk reaches it
    assert all("usage" not in c for c in chunks)
    assert fake.stats.recorded[-1].body["stream_options"] == {"include_usage": True}


def test_stream_usage_kept_when_asked(
    gateway: GatewayServer, fake: FakeUpstream, admin_headers: dict[str, str]
) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers=admin_headers,
        json={
            "model": "fake-model",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    events = sse_events(r.text)
    usage = json.loads(events[-2])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 8


def test_completions_route(gateway: GatewayServer, fake: FakeUpstream, admin_headers: dict[str, str]) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/completions",
        headers=admin_headers,
        json={"model": "fake-model", "prompt": "Once upon", "max_tokens": 3},
    )
    assert r.status_code == 200
    assert r.json()["choices"][0]["text"] == "t0 t1 t2 "
    assert fake.stats.recorded[-1].path == "/v1/completions"


def test_models_list(gateway: GatewayServer, admin_headers: dict[str, str]) -> None:
    r = httpx.get(f"{gateway.url}/v1/models", headers=admin_headers)
    ids = {m["id"] for m in r.json()["data"]}
    assert ids == {"fake-model", "nano"}
    assert r.json()["object"] == "list"
