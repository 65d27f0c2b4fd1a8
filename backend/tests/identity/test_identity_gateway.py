"""Identity, limits and usage through the real gateway (uvicorn + fake vLLM upstream): API keys
and JWTs on /v1 routes, 429 with Retry-After and x-ratelimit-* headers, headers on successes,
usage accounted per request, revocation effective at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from nova.config import Settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway import GatewayServer

PW = "Correct-horse-9"
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


@pytest.fixture
def gw(
    fake: FakeUpstream,
    gateway_factory: Callable[..., GatewayServer],
    migrated: dict[str, Settings],
    namespace: str,
    redis_url: str,
) -> GatewayServer:
    pg = migrated["postgres"]
    return gateway_factory(
        {"fake-model": {"deployments": [{"base_url": fake.base_url}], "context_window": 4096}},
        aliases={"nano": "fake-model"},
        database_url=pg.database_url,
        database_schema=pg.database_schema,
        redis_url=redis_url,
        redis_namespace=namespace,
        usage_flush_ms=50,
    )


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"message", "type", "code", "param"}
    return err


def _user_and_key(
    gw: GatewayServer, admin: dict[str, str], unique: Callable[[str], str], **key: Any
) -> tuple[str, str]:
    r = httpx.post(f"{gw.url}/admin/users", headers=admin, json={"username": unique("gw"), "password": PW})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    r = httpx.post(f"{gw.url}/admin/keys", headers=admin, json={"user_id": uid, **key})
    assert r.status_code == 201, r.text
    return uid, r.json()["key"]


def test_key_limits_headers_and_usage(
    gw: GatewayServer, admin_headers: dict[str, str], unique: Callable[[str], str]
) -> None:
    _, key = _user_and_key(gw, admin_headers, unique, requests_per_minute=3, tokens_per_minute=100_000)
    h = {"Authorization": f"Bearer {key}"}
    remaining = []
    for _ in range(3):
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json=CHAT)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-limit-tokens"] == "100000"
        remaining.append(r.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    r = httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json=CHAT)
    err = _error(r, 429)
    assert err["type"] == "rate_limit_exceeded" and 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining-requests"] == "0"

    deadline = time.monotonic() + 10
    while True:  # usage is written in batches off the response path
        rows = httpx.get(f"{gw.url}/v1/usage?group_by=model", headers=h).json()["data"]
        if (rows and rows[0]["requests"] == 4) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows == [{**rows[0], "model": "fake-model", "requests": 4, "errors": 1}]
    assert rows[0]["completion_tokens"] == 3 * 8 and rows[0]["prompt_tokens"] > 0


def test_token_limit_refuses_oversized_request(
    gw: GatewayServer, admin_headers: dict[str, str], unique: Callable[[str], str]
) -> None:
    _, key = _user_and_key(gw, admin_headers, unique, tokens_per_minute=300)
    h = {"Authorization": f"Bearer {key}"}
    assert httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json=CHAT).status_code == 200
    err = _error(
        httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json={**CHAT, "max_tokens": 1000}), 429
    )
    assert "too large" in err["message"]


def test_allowed_models_and_revocation(
    gw: GatewayServer, admin_headers: dict[str, str], unique: Callable[[str], str]
) -> None:
    _, key = _user_and_key(gw, admin_headers, unique, allowed_models=["nano"])
    h = {"Authorization": f"Bearer {key}"}
    assert (
        httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json={**CHAT, "model": "nano"}).status_code
        == 200
    )
    _error(httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json=CHAT), 403)
    key_id = httpx.get(f"{gw.url}/v1/auth/me", headers=h).json()["key_id"]
    assert httpx.delete(f"{gw.url}/v1/keys/{key_id}", headers=h).status_code == 200
    err = _error(httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json={**CHAT, "model": "nano"}), 401)
    assert err["type"] == "authentication_error"
    _error(
        httpx.post(f"{gw.url}/v1/chat/completions", headers={"Authorization": "Bearer nova-x"}, json=CHAT),
        401,
    )


def test_jwt_login_then_chat(
    gw: GatewayServer, admin_headers: dict[str, str], unique: Callable[[str], str]
) -> None:
    name = unique("jwt")
    assert httpx.post(f"{gw.url}/admin/users", headers=admin_headers,
                      json={"username": name, "password": PW}).status_code == 201  # fmt: skip
    tokens = httpx.post(f"{gw.url}/v1/auth/login", json={"username": name, "password": PW}).json()
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.post(f"{gw.url}/v1/chat/completions", headers=h, json=CHAT).status_code == 200
    tampered = tokens["access_token"][:-2] + ("AA" if not tokens["access_token"].endswith("AA") else "BB")
    _error(
        httpx.post(
            f"{gw.url}/v1/chat/completions", headers={"Authorization": f"Bearer {tampered}"}, json=CHAT
        ),
        401,
    )


def test_ready_needs_the_database_and_redis_when_limits_fail_closed(
    fake: FakeUpstream, gateway_factory: Callable[..., GatewayServer], pg_schema: str, namespace: str
) -> None:
    """/health/ready answers 503 naming the store while Postgres is cut off (TCP proxy) or, with
    limits failing closed, Redis is unreachable; it recovers with the store."""
    from tests.memory.proxy import TcpProxy

    db_proxy, redis_proxy = TcpProxy(5432).start(), TcpProxy(6379).start()
    try:
        gw = gateway_factory(
            {"m": {"deployments": [{"base_url": fake.base_url}]}},
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{db_proxy.port}/test",
            database_schema=pg_schema,
            redis_url=f"redis://127.0.0.1:{redis_proxy.port}/0",
            redis_namespace=f"{namespace}-ready",
            limits_fail_mode="closed",
        )
        r = httpx.get(f"{gw.url}/health/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"models": {"m": True}, "database": True, "redis": True}
        db_proxy.cut()
        r = httpx.get(f"{gw.url}/health/ready", timeout=10)
        assert r.status_code == 503 and r.json()["checks"]["database"] is False, r.text
        db_proxy.restore()
        redis_proxy.cut()
        r = httpx.get(f"{gw.url}/health/ready", timeout=10)
        assert r.status_code == 503, r.text
        assert r.json()["checks"]["database"] is True and r.json()["checks"]["redis"] is False
        redis_proxy.restore()
        assert httpx.get(f"{gw.url}/health/ready", timeout=10).status_code == 200
    finally:
        db_proxy.stop()
        redis_proxy.stop()
