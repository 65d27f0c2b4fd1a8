"""Failure semantics: retries before the first byte only, timeouts, mid-stream deaths, cancellation."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fakes.upstream import Behavior, FakeUpstream
from tests.gateway import GatewayServer, free_port
from tests.metrics_util import sample

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def two_replicas(make_fake: Callable[..., FakeUpstream], make_gw: Callable[..., GatewayServer], **kw: object):
    a, b = make_fake("m"), make_fake("m")
    gw = make_gw({"m": {"deployments": [{"base_url": a.base_url}, {"base_url": b.base_url}]}}, **kw)
    return a, b, gw


def events(text: str) -> list[str]:
    return [e[6:] for e in text.split("\n\n") if e.startswith("data: ")]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retry_on_retryable_status_goes_to_other_replica(
    fake_upstreams: Callable[..., FakeUpstream],
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
    status: int,
) -> None:
    bad, good, gw = two_replicas(fake_upstreams, gateway_factory, eject_after_failures=100)
    bad.default = Behavior(mode="status", status=status)
    for _ in range(6):
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=CHAT)
        assert r.status_code == 200, r.text
    assert bad.stats.requests >= 1
    assert good.stats.completed == 6


def test_connection_refused_fails_over(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gw = gateway_factory(
        {"m": {"deployments": [{"base_url": dead}, {"base_url": fake.base_url, "model": "m"}]}}
    )
    for _ in range(4):
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=CHAT)
        assert r.status_code == 200
    assert fake.stats.completed == 4


def test_all_upstreams_down_is_503_with_retry_after(
    gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    gw = gateway_factory({"m": {"deployments": [{"base_url": f"http://127.0.0.1:{free_port()}/v1"}]}})
    t0 = time.monotonic()
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=CHAT)
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert r.json()["error"]["type"] == "service_unavailable"
    assert time.monotonic() - t0 < 10  # never hangs


def test_exhausted_5xx_is_502(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="status", status=500)
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}}, upstream_retries=2)
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=CHAT)
    assert r.status_code == 502
    assert r.json()["error"]["message"] == "scripted 500"
    assert fake.stats.requests == 3


def test_exhausted_429_keeps_retry_after(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="status", status=429, retry_after="7")
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}}, upstream_retries=1)
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=CHAT)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"


def test_client_error_passes_through_without_retry(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="status", status=400)
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}})
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=CHAT)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "scripted 400"
    assert fake.stats.requests == 1


def test_reset_mid_stream_ends_with_error_event_not_done(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="reset", tokens=10, after=3)
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}})
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json={**CHAT, "stream": True})
    evs = events(r.text)
    assert "[DONE]" not in evs
    last = json.loads(evs[-1])
    assert last["error"]["type"] == "upstream_error"
    finishes = [c["finish_reason"] for e in evs[:-1] for c in json.loads(e)["choices"]]
    assert "stop" not in finishes
    assert fake.stats.requests == 1  # bytes were sent: never retried


def test_ttft_timeout_is_504(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="hang")
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}}, upstream_ttft_timeout=0.5)
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json={**CHAT, "stream": True})
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert fake.wait_idle()  # the hung upstream request was abandoned, not leaked
    assert fake.stats.cancelled == 1


def test_total_timeout_non_stream_is_504(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="hang")
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}}, upstream_total_timeout=0.5)
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=CHAT)
    assert r.status_code == 504


def test_chunk_gap_timeout_mid_stream_is_error_event(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="hang_after", tokens=10, after=2)
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}}, upstream_chunk_timeout=0.5)
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json={**CHAT, "stream": True})
    evs = events(r.text)
    assert "[DONE]" not in evs
    assert json.loads(evs[-1])["error"]["code"] == "upstream_timeout"
    assert fake.wait_idle()
    assert fake.stats.cancelled == 1


def _raw_request(port: int, body: dict[str, object], key: str) -> socket.socket:
    payload = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return s


def test_client_disconnect_mid_stream_cancels_upstream(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(tokens=1000, itl=0.02)
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}})
    s = _raw_request(gw.settings.port, {**CHAT, "stream": True}, admin_headers["Authorization"][7:])
    assert b"200 OK" in s.recv(4096)
    time.sleep(0.1)
    s.close()
    assert fake.wait_idle(5)
    assert fake.stats.cancelled == 1
    assert fake.stats.completed == 0


def test_client_disconnect_while_waiting_non_stream_cancels_upstream(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    fake.default = Behavior(mode="hang")
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}})
    before = sample(httpx.get(f"{gw.url}/metrics").text, "nova_client_disconnects_total", route="chat")
    s = _raw_request(gw.settings.port, CHAT, admin_headers["Authorization"][7:])
    deadline = time.monotonic() + 5
    while fake.stats.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    s.close()
    assert fake.wait_idle(5)
    assert fake.stats.cancelled == 1
    after = sample(httpx.get(f"{gw.url}/metrics").text, "nova_client_disconnects_total", route="chat")
    assert after == before + 1


def test_steady_slow_stream_is_not_cut_by_gap_timeout(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    # 8 chunks 0.3 s apart (2.1 s in all) under a 0.5 s gap limit: every gap is within the limit.
    fake.default = Behavior(tokens=8, itl=0.3)
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}}, upstream_chunk_timeout=0.5)
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json={**CHAT, "stream": True})
    assert events(r.text)[-1] == "[DONE]"
