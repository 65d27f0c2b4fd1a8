"""The identity routers over HTTP (ASGI, real database): auth flows, key self-service with
isolation, admin endpoints, usage, and bad input — all errors in OpenAI's shape."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from nova.api import admin, auth, keys, usage
from nova.api.errors import install_error_handlers
from nova.config import Settings
from nova.identity.components import IdentityComponents, build_identity
from nova.store.usage import UsageEvent

PW = "Correct-horse-9"


@pytest.fixture
async def components(settings: Settings) -> AsyncIterator[IdentityComponents]:
    c = build_identity(settings.model_copy(update={"signup_enabled": True, "usage_flush_ms": 20}))
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
async def client(components: IdentityComponents) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    for r in (auth.router, keys.router, usage.router, admin.router):
        app.include_router(r)
    app.state.settings = components.settings
    app.state.identity = components
    app.state.authenticator = components.authenticator
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code", "param"} and err["message"]
    return err  # type: ignore[no-any-return]


async def _user(
    components: IdentityComponents, unique: Callable[[str], str], role: str = "user"
) -> tuple[str, str]:
    """Create a user with a password; return (user_id, api key)."""
    from nova.identity.service import KeySpec

    u = await components.service.create_user(unique("u"), PW, role)  # type: ignore[arg-type]
    _, key = await components.service.create_key(u.id, KeySpec(name="t"))
    return u.id, key


async def test_signup_login_me_refresh_logout(
    client: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("zoe")
    r = await client.post("/v1/auth/signup", json={"username": name, "password": PW})
    assert r.status_code == 201 and r.json()["role"] == "user"
    assert_error(await client.post("/v1/auth/signup", json={"username": name, "password": PW}), 409)
    assert_error(
        await client.post("/v1/auth/signup", json={"username": unique("y"), "password": "weak"}), 422
    )

    assert_error(
        await client.post("/v1/auth/login", json={"username": name, "password": "Wrong-pass-12"}), 401
    )
    r = await client.post("/v1/auth/login", json={"username": name, "password": PW})
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
    me = (await client.get("/v1/auth/me", headers=bearer(tokens["access_token"]))).json()
    assert me["role"] == "user" and me["key_id"] is None

    r = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    fresh = r.json()
    assert r.status_code == 200 and fresh["refresh_token"] != tokens["refresh_token"]

    r = await client.post(
        "/v1/auth/logout",
        json={"refresh_token": fresh["refresh_token"]},
        headers=bearer(fresh["access_token"]),
    )
    assert r.status_code == 204
    assert_error(await client.get("/v1/auth/me", headers=bearer(fresh["access_token"])), 401)
    assert_error(await client.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}), 401)


async def test_bad_credentials_are_401_in_openai_shape(client: httpx.AsyncClient) -> None:
    none_alg = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps({"sub": "x", "role": "admin"}).encode()).rstrip(b"=").decode()
        + "."
    )
    unknown_key = "nova-" + "a" * 10 + "-" + "B" * 40
    for value in ("", "Bearer", "Basic abc", "Bearer nova-unknown", f"Bearer {unknown_key}",
                  "Bearer " + none_alg, "Bearer a.b.c", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"):  # fmt: skip
        headers = {"Authorization": value} if value else {}
        err = assert_error(await client.get("/v1/auth/me", headers=headers), 401)
        assert err["type"] == "authentication_error"


async def test_own_keys_and_isolation(
    client: httpx.AsyncClient, components: IdentityComponents, unique: Callable[[str], str]
) -> None:
    _, key_a = await _user(components, unique)
    b_id, key_b = await _user(components, unique)
    r = await client.post("/v1/keys", json={"name": "laptop", "expires_in_days": 30}, headers=bearer(key_a))
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith("nova-") and created["expires_at"]
    listed = (await client.get("/v1/keys", headers=bearer(key_a))).json()["data"]
    assert {k["id"] for k in listed} >= {created["id"]} and all("key" not in k for k in listed)
    assert (await client.get("/v1/auth/me", headers=bearer(created["key"]))).status_code == 200

    b_keys = (await client.get("/v1/keys", headers=bearer(key_b))).json()["data"]
    b_key_id = b_keys[0]["id"]
    assert b_key_id not in {k["id"] for k in listed}
    # A touching B's key: indistinguishable from a key that does not exist.
    assert_error(await client.get(f"/v1/keys/{b_key_id}", headers=bearer(key_a)), 404)
    assert_error(await client.delete(f"/v1/keys/{b_key_id}", headers=bearer(key_a)), 404)
    assert_error(await client.get(f"/v1/usage?key_id={b_key_id}", headers=bearer(key_a)), 404)
    assert_error(await client.get(f"/v1/keys/{uuid.uuid4().hex}", headers=bearer(key_a)), 404)
    assert (await client.get("/v1/auth/me", headers=bearer(key_b))).json()["user_id"] == b_id  # still works

    r = await client.delete(f"/v1/keys/{created['id']}", headers=bearer(key_a))
    assert r.status_code == 200 and r.json()["active"] is False
    assert_error(await client.get("/v1/auth/me", headers=bearer(created["key"])), 401)


async def test_usage_for_caller_and_admin(
    client: httpx.AsyncClient, components: IdentityComponents, unique: Callable[[str], str]
) -> None:
    a_id, key_a = await _user(components, unique)
    b_id, _ = await _user(components, unique)
    _, admin_key = await _user(components, unique, role="admin")
    a_key_id = (await client.get("/v1/auth/me", headers=bearer(key_a))).json()["key_id"]
    for uid, kid, model in ((a_id, a_key_id, "m1"), (a_id, a_key_id, "m2"), (b_id, "other", "m1")):
        components.usage.record(
            UsageEvent(uuid.uuid4().hex, uid, kid, model, "/v1/chat/completions", 200, 10, 5)
        )
    await components.usage.flush()

    mine = (await client.get("/v1/usage?group_by=model", headers=bearer(key_a))).json()["data"]
    assert [(row["model"], row["total_tokens"]) for row in mine] == [("m1", 15), ("m2", 15)]
    by_key = (await client.get(f"/v1/usage?group_by=key&key_id={a_key_id}", headers=bearer(key_a))).json()
    assert by_key["data"] == [{**by_key["data"][0], "key": a_key_id, "requests": 2}]
    assert_error(await client.get("/v1/usage?group_by=user", headers=bearer(key_a)), 422)

    assert_error(await client.get("/admin/usage", headers=bearer(key_a)), 403)
    r = await client.get(f"/admin/usage?group_by=user,model&user_id={b_id}", headers=bearer(admin_key))
    assert [(row["user"], row["model"], row["requests"]) for row in r.json()["data"]] == [(b_id, "m1", 1)]
    r = await client.get("/admin/usage?group_by=day", headers=bearer(admin_key))
    assert r.status_code == 200 and all("day" in row for row in r.json()["data"])


async def test_admin_users_and_keys(
    client: httpx.AsyncClient, components: IdentityComponents, unique: Callable[[str], str]
) -> None:
    _, admin_key = await _user(components, unique, role="admin")
    _, user_key = await _user(components, unique)
    h = bearer(admin_key)
    assert_error(await client.get("/admin/users", headers=bearer(user_key)), 403)
    assert_error(await client.post("/admin/keys", json={"user_id": "x"}, headers=bearer(user_key)), 403)

    name = unique("new")
    r = await client.post(
        "/admin/users", json={"username": name, "password": PW, "requests_per_minute": 30}, headers=h
    )
    assert r.status_code == 201
    uid = r.json()["id"]
    assert name in {
        u["username"] for u in (await client.get("/admin/users?limit=1000", headers=h)).json()["data"]
    }

    r = await client.post("/admin/keys", headers=h, json={
        "user_id": uid, "name": "svc", "allowed_models": ["m1"], "requests_per_minute": 100,
        "tokens_per_minute": 5000, "max_concurrent": 4, "monthly_token_budget": 10**6})  # fmt: skip
    assert r.status_code == 201
    key = r.json()
    assert key["tokens_per_minute"] == 5000 and key["allowed_models"] == ["m1"]
    me = (await client.get("/v1/auth/me", headers=bearer(key["key"]))).json()
    assert me["allowed_models"] == ["m1"]

    r = await client.patch(f"/admin/keys/{key['id']}", headers=h, json={"requests_per_minute": 5})
    assert r.json()["requests_per_minute"] == 5 and r.json()["tokens_per_minute"] == 5000  # merge
    assert r.json()["name"] == "svc" and r.json()["allowed_models"] == ["m1"]
    r = await client.patch(f"/admin/keys/{key['id']}", headers=h, json={"tokens_per_minute": None})
    assert r.json()["tokens_per_minute"] is None and r.json()["requests_per_minute"] == 5  # null clears
    principal = await components.authenticator.authenticate(key["key"])
    assert principal.limits.requests_per_minute == 5  # cache invalidated by the update

    r = await client.patch(f"/admin/users/{uid}", headers=h, json={"disabled": True})
    assert r.json()["disabled"] is True
    assert_error(await client.get("/v1/auth/me", headers=bearer(key["key"])), 401)
    r = await client.patch(
        f"/admin/users/{uid}", headers=h, json={"disabled": False, "requests_per_minute": None}
    )
    assert r.json()["requests_per_minute"] is None
    assert (await client.get("/v1/auth/me", headers=bearer(key["key"]))).status_code == 200

    r = await client.delete(f"/admin/keys/{key['id']}", headers=h)
    assert r.json()["revoked_at"] is not None
    assert_error(await client.get("/v1/auth/me", headers=bearer(key["key"])), 401)
    assert_error(await client.get(f"/admin/users/{uuid.uuid4().hex}", headers=h), 404)


async def test_bad_bodies(
    client: httpx.AsyncClient, components: IdentityComponents, unique: Callable[[str], str]
) -> None:
    _, key = await _user(components, unique)
    h = {**bearer(key), "content-type": "application/json"}
    assert_error(await client.post("/v1/auth/login", content=b"{not json", headers=h), 400)
    assert_error(await client.post("/v1/auth/login", json={"username": "x"}), 400)
    assert_error(await client.post("/v1/auth/login", json={"username": "x" * 200, "password": "p"}), 400)
    assert_error(await client.post("/v1/keys", json={"requests_per_minute": -1}, headers=h), 400)
    assert_error(await client.post("/v1/keys", json={"expires_at": "2001-01-01T00:00:00Z"}, headers=h), 422)
    big = json.dumps({"name": "x", "pad": "y" * 100_000}).encode()
    assert_error(await client.post("/v1/keys", content=big, headers=h), 413)


async def test_database_outage_is_503_not_500(
    migrated: dict[str, Settings], unique: Callable[[str], str]
) -> None:
    """Postgres cut off (through a TCP proxy) mid-session: identity routes answer 503 with
    Retry-After, then work again once it is back."""
    from tests.memory.proxy import TcpProxy

    proxy = TcpProxy(5432).start()
    pg = migrated["postgres"]
    url = pg.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")  # type: ignore[union-attr]
    components = build_identity(pg.model_copy(update={"database_url": url, "signup_enabled": True}))
    await components.start()
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(auth.router)
    app.state.settings, app.state.identity = components.settings, components
    app.state.authenticator = components.authenticator
    name = unique("outage")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post("/v1/auth/signup", json={"username": name, "password": PW})
            assert r.status_code == 201, r.text
            proxy.cut()
            r = await c.post("/v1/auth/login", json={"username": name, "password": PW})
            err = assert_error(r, 503)
            assert err["code"] == "database_unavailable" and r.headers["retry-after"] == "1"
            proxy.restore()
            r = await c.post("/v1/auth/login", json={"username": name, "password": PW})
            assert r.status_code == 200, r.text
    finally:
        proxy.restore()
        await components.stop()
        proxy.stop()
