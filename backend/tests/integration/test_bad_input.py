"""Bad input gets OpenAI-shaped errors with the right status, and never reaches the upstream."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway import GatewayServer

MSG = [{"role": "user", "content": "hi"}]


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code", "param"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    return err


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MSG}, "model"),
        ({"model": 3, "messages": MSG}, "model"),
        ({"model": "fake-model"}, "messages"),
        ({"model": "fake-model", "messages": "hi"}, "messages"),
        ({"model": "fake-model", "messages": []}, "messages"),
        ({"model": "fake-model", "messages": MSG, "stream": "yes"}, "stream"),
        ({"model": "fake-model", "messages": MSG, "max_tokens": -1}, "max_tokens"),
        ({"model": "fake-model", "messages": MSG, "stream_options": 1}, "stream_options"),
        ({"model": "fake-model", "messages": MSG, "conversation_id": 5}, "conversation_id"),
    ],
)
def test_wrong_types_are_400(
    gateway: GatewayServer,
    fake: FakeUpstream,
    admin_headers: dict[str, str],
    body: dict[str, object],
    param: str,
) -> None:
    r = httpx.post(f"{gateway.url}/v1/chat/completions", headers=admin_headers, json=body)
    err = assert_openai_error(r, 400)
    assert err["param"] == param
    assert fake.stats.requests == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b"", b'"str"'])
def test_invalid_json_is_400(
    gateway: GatewayServer, fake: FakeUpstream, admin_headers: dict[str, str], raw: bytes
) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={**admin_headers, "content-type": "application/json"},
        content=raw,
    )
    assert_openai_error(r, 400, "invalid_json")
    assert fake.stats.requests == 0


def test_unknown_model_is_404(
    gateway: GatewayServer, fake: FakeUpstream, admin_headers: dict[str, str]
) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions", headers=admin_headers, json={"model": "nope", "messages": MSG}
    )
    assert_openai_error(r, 404, "model_not_found")
    assert fake.stats.requests == 0


def test_body_over_limit_is_413(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}}, max_body_bytes=1000)
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]}
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=big)
    assert_openai_error(r, 413, "payload_too_large")

    def chunked():  # no content-length: counted while streaming
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}]}'

    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, content=chunked())
    assert_openai_error(r, 413)
    assert fake.stats.requests == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
)
def test_auth_required_on_v1(gateway: GatewayServer, fake: FakeUpstream, headers: dict[str, str]) -> None:
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("GET", "/v1/models"),
    ]:
        r = httpx.request(
            method, f"{gateway.url}{path}", headers=headers, json={"model": "fake-model", "messages": MSG}
        )
        err = assert_openai_error(r, 401)
        assert err["type"] == "authentication_error"
    assert fake.stats.requests == 0


def test_unknown_route_and_method(gateway: GatewayServer, admin_headers: dict[str, str]) -> None:
    assert_openai_error(httpx.get(f"{gateway.url}/v1/nothing-here", headers=admin_headers), 404)
    assert_openai_error(httpx.get(f"{gateway.url}/v1/chat/completions", headers=admin_headers), 405)


def test_admin_reload_requires_admin_and_reports_bad_file(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], admin_headers: dict[str, str]
) -> None:
    gw = gateway_factory({"m": {"deployments": [{"base_url": fake.base_url}]}})
    assert httpx.post(f"{gw.url}/admin/models/reload").status_code == 401
    assert gw.settings.models_file is not None
    gw.settings.models_file.write_text("models:\n  m:\n    deployments:\n      - base_url: ftp://x\n")
    r = httpx.post(f"{gw.url}/admin/models/reload", headers=admin_headers)
    err = assert_openai_error(r, 400, "invalid_models_file")
    assert "models.m.deployments.0.base_url" in str(err["message"])
    # the old table still serves
    ok = httpx.post(
        f"{gw.url}/v1/chat/completions", headers=admin_headers, json={"model": "m", "messages": MSG}
    )
    assert ok.status_code == 200


def test_switched_off_features_are_503_with_a_disabled_code(
    fake: FakeUpstream,
    gateway_factory: Callable[..., GatewayServer],
    admin_headers: dict[str, str],
) -> None:
    """Clients (the UI) detect a feature that is off by 503 + ``*_disabled``, the same for each."""
    gw = gateway_factory({"fake-model": {"deployments": [{"base_url": fake.base_url}]}}, memory_enabled=False)
    assert_openai_error(
        httpx.get(f"{gw.url}/v1/conversations", headers=admin_headers), 503, "conversations_disabled"
    )
    assert_openai_error(httpx.get(f"{gw.url}/v1/collections", headers=admin_headers), 503, "rag_disabled")
    body = {"model": "fake-model", "messages": MSG, "conversation_id": "c1"}
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin_headers, json=body)
    assert_openai_error(r, 400)
    assert fake.stats.requests == 0
