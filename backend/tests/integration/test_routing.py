"""Load balancing, affinity, health checks, passive ejection and reload without drops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import yaml

from tests.fakes.upstream import Behavior, FakeUpstream
from tests.gateway import GatewayServer


def chat(gw: GatewayServer, headers: dict[str, str], **body: object) -> httpx.Response:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(f"{gw.url}/v1/chat/completions", headers=headers, json=payload, timeout=30)


def test_least_outstanding_spreads_concurrent_streams(
    fake_upstreams: Callable[..., FakeUpstream],
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    fakes = [fake_upstreams("m") for _ in range(3)]
    for f in fakes:
        f.default = Behavior(tokens=20, itl=0.02)
    gw = gateway_factory({"m": {"deployments": [{"base_url": f.base_url} for f in fakes]}})
    threads = [
        threading.Thread(target=chat, args=(gw, admin_headers), kwargs={"stream": True}) for _ in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [f.stats.requests for f in fakes] == [4, 4, 4]


def test_weights_bias_load(
    fake_upstreams: Callable[..., FakeUpstream],
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    a, b = fake_upstreams("m"), fake_upstreams("m")
    for f in (a, b):
        f.default = Behavior(tokens=20, itl=0.02)
    gw = gateway_factory(
        {"m": {"deployments": [{"base_url": a.base_url, "weight": 3}, {"base_url": b.base_url, "weight": 1}]}}
    )
    threads = [
        threading.Thread(target=chat, args=(gw, admin_headers), kwargs={"stream": True}) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (a.stats.requests, b.stats.requests) == (6, 2)


def test_session_affinity_keeps_a_conversation_on_one_replica(
    fake_upstreams: Callable[..., FakeUpstream],
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    fakes = [fake_upstreams("m") for _ in range(3)]
    gw = gateway_factory(
        {"m": {"routing": {"policy": "session"}, "deployments": [{"base_url": f.base_url} for f in fakes]}}
    )
    for conv in ("conv-a", "conv-b", "conv-c", "conv-d"):
        before = [f.stats.requests for f in fakes]
        for _ in range(4):
            assert chat(gw, admin_headers, user=conv).status_code == 200
        got = [f.stats.requests - b for f, b in zip(fakes, before, strict=True)]
        assert sorted(got) == [0, 0, 4], got
    # the x-session-id header works the same way
    before = [f.stats.requests for f in fakes]
    for _ in range(3):
        r = httpx.post(
            f"{gw.url}/v1/chat/completions",
            headers={**admin_headers, "x-session-id": "s-1"},
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200
    assert sorted(f.stats.requests - b for f, b in zip(fakes, before, strict=True)) == [0, 0, 3]


def test_prefix_affinity_and_fallback_when_replica_unhealthy(
    fake_upstreams: Callable[..., FakeUpstream],
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    fakes = [fake_upstreams("m") for _ in range(3)]
    gw = gateway_factory(
        {"m": {"routing": {"policy": "prefix"}, "deployments": [{"base_url": f.base_url} for f in fakes]}}
    )
    system = {"role": "system", "content": "You are a pirate. " * 20}
    history: list[dict[str, str]] = [system]
    turns = []
    for i in range(5):  # one growing conversation: every turn shares the leading messages
        history = [*history, {"role": "user", "content": f"question {i}"}]
        turns.append(history)
        history = [*history, {"role": "assistant", "content": f"answer {i}"}]
    for msgs in turns:
        assert chat(gw, admin_headers, messages=msgs).status_code == 200
    counts = [f.stats.requests for f in fakes]
    assert sorted(counts) == [0, 0, 5], counts
    owner = fakes[counts.index(5)]
    owner.healthy = False
    time.sleep(0.6)  # health interval is 0.2 s in tests
    for msgs in turns:
        assert chat(gw, admin_headers, messages=msgs).status_code == 200
    assert owner.stats.requests == 5
    ready = httpx.get(f"{gw.url}/health/ready")
    assert ready.status_code == 200  # other replicas still serve the model


def test_passive_ejection_and_recovery(
    fake_upstreams: Callable[..., FakeUpstream],
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    bad, good = fake_upstreams("m"), fake_upstreams("m")
    bad.default = Behavior(mode="status", status=500)
    gw = gateway_factory(
        {"m": {"deployments": [{"base_url": bad.base_url}, {"base_url": good.base_url}]}},
        eject_after_failures=2,
        eject_seconds=3.0,
    )
    for _ in range(10):
        assert chat(gw, admin_headers).status_code == 200
    assert bad.stats.requests == 2  # ejected after two failures, then skipped
    bad.default = Behavior()
    time.sleep(3.1)
    for _ in range(10):
        assert chat(gw, admin_headers).status_code == 200
    assert bad.stats.completed >= 1  # back in rotation after the ejection window


def test_ready_reflects_upstream_health(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}})
    assert httpx.get(f"{gw.url}/health/ready").status_code == 200
    fake.healthy = False
    time.sleep(0.6)
    r = httpx.get(f"{gw.url}/health/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["models"] == {"m": False}
    assert httpx.get(f"{gw.url}/health/live").status_code == 200


def test_reload_adds_model_without_dropping_in_flight(
    fake_upstreams: Callable[..., FakeUpstream],
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    a, b = fake_upstreams("m"), fake_upstreams("m2")
    a.default = Behavior(tokens=30, itl=0.02)
    gw = gateway_factory({"m": {"deployments": [{"base_url": a.base_url}]}})
    results: list[str] = []

    def long_stream() -> None:
        r = chat(gw, admin_headers, stream=True)
        results.append(r.text)

    t = threading.Thread(target=long_stream)
    t.start()
    time.sleep(0.15)
    assert gw.settings.models_file is not None
    gw.settings.models_file.write_text(
        yaml.safe_dump({"models": {"m2": {"deployments": [{"base_url": b.base_url}]}}})
    )
    r = httpx.post(f"{gw.url}/admin/models/reload", headers=admin_headers)
    assert r.json() == {"reloaded": True, "models": ["m2"]}
    t.join()
    assert results[0].rstrip().endswith("data: [DONE]")  # the in-flight stream finished intact
    assert chat(gw, admin_headers).status_code == 404
    assert chat(gw, admin_headers, model="m2").status_code == 200
