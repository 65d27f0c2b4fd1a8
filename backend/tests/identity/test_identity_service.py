"""Users, logins, refresh rotation, keys and the store-backed authenticator on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nova.config import Settings
from nova.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)
from nova.identity import passwords
from nova.identity.service import IdentityService, KeySpec
from nova.identity.store_authenticator import StoreAuthenticator
from nova.store.db import Database
from nova.store.repos.users import UserRepository

PW = "Correct-horse-9"


def test_password_rules() -> None:
    for bad in ("short1A", "aaaaaaaaaaaa", "alllowercaseletters", "x" * 2000):
        with pytest.raises(Unprocessable):
            passwords.check_rules(bad, "bob", 10)
    with pytest.raises(Unprocessable, match="username"):
        passwords.check_rules("Bobby-1234567", "bobby", 10)
    passwords.check_rules(PW, "bob", 10)
    h = passwords.hash_password(PW)
    assert h.startswith("$argon2id$") and passwords.verify_password(PW, h)
    assert not passwords.verify_password("wrong-Password-1", h)
    assert not passwords.verify_password(PW, None)


async def test_create_user_validates_and_rejects_duplicates(
    service: IdentityService, unique: Callable[[str], str]
) -> None:
    name = unique("carol")
    user = await service.create_user(name.upper(), PW)
    assert user.username == name and user.role == "user" and not user.disabled
    with pytest.raises(Conflict):
        await service.create_user(name, PW)
    with pytest.raises(Unprocessable):
        await service.create_user("x", PW)
    with pytest.raises(Unprocessable):
        await service.create_user(unique("dave"), "weak")


async def test_signup_switch(
    service: IdentityService, settings: Settings, unique: Callable[[str], str]
) -> None:
    with pytest.raises(Forbidden):
        await service.signup(unique("eve"), PW)
    enabled = IdentityService(service.db, settings.model_copy(update={"signup_enabled": True}), service.jwt,
                              service.pepper, service.bus)  # fmt: skip
    assert (await enabled.signup(unique("eve"), PW)).role == "user"


async def test_login_refresh_rotation_and_reuse_detection(
    service: IdentityService, authenticator: StoreAuthenticator, unique: Callable[[str], str]
) -> None:
    user = await service.create_user(unique("frank"), PW, role="admin")
    pair = await service.login(user.username, PW)
    principal = await authenticator.authenticate(pair.access_token)
    assert principal.user_id == user.id and principal.is_admin and principal.key_id is None

    rotated = await service.refresh(pair.refresh_token)
    assert rotated.refresh_token != pair.refresh_token
    assert (await authenticator.authenticate(rotated.access_token)).user_id == user.id
    # Replaying the spent token is theft: it fails and the whole family (incl. the new one) dies.
    with pytest.raises(Unauthorized):
        await service.refresh(pair.refresh_token)
    with pytest.raises(Unauthorized):
        await service.refresh(rotated.refresh_token)
    with pytest.raises(Unauthorized):
        await service.refresh("nova-rt-garbage")


async def test_verify_only_process_refuses_login_and_keeps_the_refresh_token(
    service: IdentityService, db: Database, settings: Settings, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """RS256 without the private key can verify but not issue: login and refresh answer 503
    before any row changes, so the refresh token is not spent and works on an issuing process."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from nova.identity.secrets import key_pepper
    from nova.identity.tokens import JwtCodec

    user = await service.create_user(unique("vera"), PW)
    pair = await service.login(user.username, PW)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    rs = settings.model_copy(update={"jwt_algorithm": "RS256", "jwt_public_key_file": pub})
    verify_only = IdentityService(db, rs, JwtCodec(rs), key_pepper(settings), service.bus)
    with pytest.raises(ServiceUnavailable):
        await verify_only.login(user.username, PW)
    with pytest.raises(ServiceUnavailable):
        await verify_only.refresh(pair.refresh_token)
    assert (await service.refresh(pair.refresh_token)).access_token  # not spent by the refusal


async def test_password_change_revokes_access_tokens_but_not_api_keys(
    service: IdentityService, authenticator: StoreAuthenticator, unique: Callable[[str], str]
) -> None:
    user = await service.create_user(unique("pat"), PW)
    _, key = await service.create_key(user.id, KeySpec(name="k"))
    before = await service.login(user.username, PW)
    assert (await authenticator.authenticate(before.access_token)).user_id == user.id
    new_pw = "Another-horse-7"
    await service.update_user(user.id, password=new_pw)
    with pytest.raises(Unauthorized, match="revoked"):
        await authenticator.authenticate(before.access_token)  # issued under the old password
    with pytest.raises(Unauthorized):
        await service.refresh(before.refresh_token)
    after = await service.login(user.username, new_pw)
    assert (await authenticator.authenticate(after.access_token)).user_id == user.id
    assert (await authenticator.authenticate(key)).user_id == user.id  # keys are separate credentials


async def test_logout_revokes_refresh_and_access(
    service: IdentityService, authenticator: StoreAuthenticator, unique: Callable[[str], str]
) -> None:
    user = await service.create_user(unique("gina"), PW)
    pair = await service.login(user.username, PW)
    claims = service.jwt.verify(pair.access_token)
    await service.logout(pair.refresh_token, claims.jti, claims.expires_at)
    with pytest.raises(Unauthorized):
        await service.refresh(pair.refresh_token)
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(pair.access_token)


async def test_failed_logins_lock_the_account(
    service: IdentityService, db: Database, unique: Callable[[str], str]
) -> None:
    user = await service.create_user(unique("hank"), PW)
    for _ in range(service.settings.login_max_failures):
        with pytest.raises(Unauthorized):
            await service.login(user.username, "Wrong-password-1")
    with pytest.raises(RateLimited) as locked:
        await service.login(user.username, PW)  # right password, but locked
    assert int(locked.value.headers["Retry-After"]) > 0
    async with db.session() as s, s.begin():
        await UserRepository(s).update(user.id, locked_until=datetime.now(UTC) - timedelta(seconds=1))
    assert (await service.login(user.username, PW)).access_token
    with pytest.raises(Unauthorized):
        await service.login(unique("nobody"), PW)


async def test_disabled_user_cannot_login_refresh_or_use_tokens(
    service: IdentityService, authenticator: StoreAuthenticator, unique: Callable[[str], str]
) -> None:
    user = await service.create_user(unique("ivan"), PW)
    pair = await service.login(user.username, PW)
    _, key = await service.create_key(user.id, KeySpec(name="k"))
    await authenticator.authenticate(pair.access_token)
    await authenticator.authenticate(key)
    await service.update_user(user.id, disabled=True)
    for credential in (pair.access_token, key):
        with pytest.raises(Unauthorized):
            await authenticator.authenticate(credential)
    with pytest.raises(Unauthorized):
        await service.login(user.username, PW)
    with pytest.raises(Unauthorized):
        await service.refresh(pair.refresh_token)


async def test_key_lifecycle_and_cache(
    service: IdentityService,
    authenticator: StoreAuthenticator,
    settings: Settings,
    unique: Callable[[str], str],
) -> None:
    user = await service.create_user(unique("judy"), PW)
    spec = KeySpec(name="ci", allowed_models=["m1"], requests_per_minute=5, tokens_per_minute=100,
                   max_concurrent=2, monthly_token_budget=1000)  # fmt: skip
    view, key = await service.create_key(user.id, spec)
    assert key.startswith(f"nova-{view.prefix}-") and len(key) == 56
    assert key not in str(view) and view.display.endswith("…")

    principal = await authenticator.authenticate(key)
    assert principal.key_id == view.id and principal.allowed_models == frozenset({"m1"})
    assert principal.limits.requests_per_minute == 5 and principal.limits.monthly_token_budget == 1000
    lookups = authenticator.db_lookups
    for _ in range(50):
        assert await authenticator.authenticate(key) is principal
    assert authenticator.db_lookups == lookups  # cache hits never touch the database

    with pytest.raises(Unauthorized):
        await authenticator.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(Unauthorized):
        await authenticator.authenticate("nova-short")

    await authenticator.flush_last_used()
    assert (await service.get_key(view.id)).last_used_at is not None

    await service.revoke_key(view.id)
    with pytest.raises(Unauthorized, match="revoked"):
        await authenticator.authenticate(key)
    assert not (await service.get_key(view.id)).active


async def test_expired_key_rejected_even_when_cached(
    service: IdentityService, authenticator: StoreAuthenticator, unique: Callable[[str], str]
) -> None:
    user = await service.create_user(unique("kim"), PW)
    _, key = await service.create_key(user.id, KeySpec(expires_at=datetime.now(UTC) + timedelta(hours=1)))
    await authenticator.authenticate(key)
    authenticator._keys[next(iter(authenticator._keys))].expires_at = 1.0  # as if the hour had passed
    with pytest.raises(Unauthorized, match="expired"):
        await authenticator.authenticate(key)
    with pytest.raises(Unprocessable):
        await service.create_key(user.id, KeySpec(expires_at=datetime.now(UTC) - timedelta(seconds=1)))


async def test_key_isolation_between_users(service: IdentityService, unique: Callable[[str], str]) -> None:
    a = await service.create_user(unique("a"), PW)
    b = await service.create_user(unique("b"), PW)
    kb, _ = await service.create_key(b.id, KeySpec(name="b's"))
    assert [k.id for k in await service.list_keys(a.id)] == []
    with pytest.raises(NotFound):
        await service.get_key(kb.id, owner_id=a.id)
    with pytest.raises(NotFound):
        await service.revoke_key(kb.id, owner_id=a.id)
    assert (await service.get_key(kb.id, owner_id=b.id)).active


async def test_self_service_keys_only_tighten_defaults(
    service: IdentityService, settings: Settings, unique: Callable[[str], str]
) -> None:
    svc = IdentityService(service.db, settings.model_copy(update={"default_key_rpm": 60}), service.jwt,
                          service.pepper, service.bus)  # fmt: skip
    user = await svc.create_user(unique("lee"), PW)
    view, _ = await svc.create_key(user.id, KeySpec(), self_service=True)
    assert view.requests_per_minute == 60
    view, _ = await svc.create_key(user.id, KeySpec(requests_per_minute=10), self_service=True)
    assert view.requests_per_minute == 10
    with pytest.raises(Forbidden):
        await svc.create_key(user.id, KeySpec(requests_per_minute=1000), self_service=True)


async def test_cold_cache_single_flight(
    service: IdentityService, authenticator: StoreAuthenticator, unique: Callable[[str], str]
) -> None:
    import asyncio

    user = await service.create_user(unique("sf"), PW)
    _, key = await service.create_key(user.id, KeySpec())
    before = authenticator.db_lookups
    principals = await asyncio.gather(*(authenticator.authenticate(key) for _ in range(50)))
    assert authenticator.db_lookups == before + 1
    assert all(p.user_id == user.id for p in principals)


async def test_database_down_degrades(
    service: IdentityService, authenticator: StoreAuthenticator, unique: Callable[[str], str]
) -> None:
    from nova.errors import ServiceUnavailable

    user = await service.create_user(unique("dd"), PW)
    _, cached = await service.create_key(user.id, KeySpec())
    _, never_seen = await service.create_key(user.id, KeySpec())
    await authenticator.authenticate(cached)
    dead = Database(Settings(env="test", database_url="postgresql+asyncpg://postgres@127.0.0.1:1/test"))
    real, authenticator._db = authenticator._db, dead
    try:
        for entry in authenticator._keys.values():
            entry.fresh_until = 0.0  # TTL over: would normally reload from the database
        assert (await authenticator.authenticate(cached)).user_id == user.id  # stale but served
        with pytest.raises(ServiceUnavailable):
            await authenticator.authenticate(never_seen)
    finally:
        authenticator._db = real
        await dead.dispose()
