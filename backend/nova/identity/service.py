"""Users, logins, refresh tokens and API keys: the identity use cases behind the routers and CLI.

Every method opens its own transaction; callers (HTTP routers, CLI, bootstrap) never see SQL.
Ownership is enforced here: methods taking ``owner_id`` treat another user's key as missing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

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
from nova.identity import api_keys, passwords
from nova.identity.invalidation import InvalidationBus
from nova.identity.tokens import JwtCodec, hash_refresh_token, new_refresh_token
from nova.store.base import new_id
from nova.store.db import Database
from nova.store.models import ApiKey, RefreshToken, User
from nova.store.repos.api_keys import ApiKeyRepository
from nova.store.repos.refresh_tokens import RefreshTokenRepository
from nova.store.repos.usage import GroupBy, UsageAggregate, UsageRepository
from nova.store.repos.users import UserRepository

Role = Literal["admin", "user"]
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{2,127}")
_BAD_LOGIN = "Invalid username or password."
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class UserView:
    id: str
    username: str
    role: str
    disabled: bool
    requests_per_minute: int | None
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, u: User) -> UserView:
        return cls(u.id, u.username, u.role, u.disabled, u.requests_per_minute, u.created_at, u.last_login_at)


@dataclass(frozen=True, slots=True)
class KeyView:
    id: str
    user_id: str
    name: str
    prefix: str
    allowed_models: list[str] | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    max_concurrent: int | None
    monthly_token_budget: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def display(self) -> str:
        return api_keys.display(self.prefix)

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > datetime.now(UTC))

    @classmethod
    def of(cls, k: ApiKey) -> KeyView:
        return cls(
            k.id, k.user_id, k.name, k.prefix, k.allowed_models, k.requests_per_minute,
            k.tokens_per_minute, k.max_concurrent, k.monthly_token_budget, k.created_at, k.expires_at,
            k.revoked_at, k.last_used_at,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a caller asks for when creating or changing a key (``None`` = unlimited/forever)."""

    name: str = ""
    expires_at: datetime | None = None
    allowed_models: Sequence[str] | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    monthly_token_budget: int | None = None


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise Unprocessable(
            "Username must be 3-128 characters (letters, digits, . _ @ + -), starting alphanumeric.",
            param="username",
        )
    return name


class IdentityService:
    def __init__(
        self, db: Database, settings: Settings, jwt: JwtCodec, pepper: bytes, bus: InvalidationBus
    ) -> None:
        self.db = db
        self.settings = settings
        self.jwt = jwt
        self.pepper = pepper
        self.bus = bus

    # -- users --------------------------------------------------------------------------------
    async def create_user(
        self, username: str, password: str | None, role: Role = "user", requests_per_minute: int | None = None
    ) -> UserView:
        name = normalize_username(username)
        if role not in ("admin", "user"):
            raise Unprocessable("Role must be 'admin' or 'user'.", param="role")
        hashed = None
        if password is not None:
            passwords.check_rules(password, name, self.settings.password_min_length)
            hashed = await passwords.hash_async(password)
        try:
            async with self.db.session() as s, s.begin():
                user = await UserRepository(s).add(name, hashed, role, requests_per_minute)
                return UserView.of(user)
        except IntegrityError:
            raise Conflict(f"User '{name}' already exists.", param="username") from None

    async def signup(self, username: str, password: str) -> UserView:
        if not self.settings.signup_enabled:
            raise Forbidden("Sign-up is disabled on this server.", code="signup_disabled")
        return await self.create_user(username, password, "user")

    async def get_user(self, user_id: str) -> UserView:
        async with self.db.session() as s:
            user = await UserRepository(s).get(user_id)
        if user is None:
            raise NotFound("User not found.")
        return UserView.of(user)

    async def find_user(self, username: str) -> UserView:
        async with self.db.session() as s:
            user = await UserRepository(s).by_username(username.strip().lower())
        if user is None:
            raise NotFound(f"User '{username}' not found.")
        return UserView.of(user)

    async def list_users(self, offset: int = 0, limit: int = 100) -> list[UserView]:
        async with self.db.session() as s:
            return [UserView.of(u) for u in await UserRepository(s).list(offset, limit)]

    async def count_users(self, role: str | None = None) -> int:
        async with self.db.session() as s:
            return await UserRepository(s).count(role)

    async def update_user(
        self,
        user_id: str,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        requests_per_minute: int | None = _UNSET,
    ) -> UserView:
        values: dict[str, Any] = {}
        if role is not None:
            if role not in ("admin", "user"):
                raise Unprocessable("Role must be 'admin' or 'user'.", param="role")
            values["role"] = role
        if disabled is not None:
            values["disabled"] = disabled
        if requests_per_minute is not _UNSET:
            values["requests_per_minute"] = requests_per_minute
        current = await self.get_user(user_id)
        if password is not None:
            passwords.check_rules(password, current.username, self.settings.password_min_length)
            values["password_hash"] = await passwords.hash_async(password)
            values["token_version"] = User.token_version + 1  # every access token issued dies
            values["failed_logins"] = 0
            values["locked_until"] = None
        if values:
            async with self.db.session() as s, s.begin():
                await UserRepository(s).update(user_id, updated_at=datetime.now(UTC), **values)
                if disabled or password is not None:
                    await RefreshTokenRepository(s).revoke_user(user_id, datetime.now(UTC))
            await self.bus.publish("user", user_id)
        return await self.get_user(user_id)

    # -- login / tokens ---------------------------------------------------------------------
    def _require_issuer(self) -> None:
        """Checked before any row changes: a verify-only process (RS256 without the private key)
        must not spend a refresh token or record a login it cannot answer with a token."""
        if not self.jwt.can_issue:
            raise ServiceUnavailable(
                "This server verifies tokens but cannot issue them (no NOVA_JWT_PRIVATE_KEY_FILE).",
                code="token_issuing_unavailable",
            )

    async def login(self, username: str, password: str) -> TokenPair:
        self._require_issuer()
        now = datetime.now(UTC)
        name = username.strip().lower()
        async with self.db.session() as s:
            user = await UserRepository(s).by_username(name)
        if user is not None and user.locked_until is not None and user.locked_until > now:
            retry = max(1, int((user.locked_until - now).total_seconds()) + 1)
            raise RateLimited(
                "Too many failed login attempts; try again later.",
                code="account_locked",
                headers={"Retry-After": str(retry)},
            )
        ok = await passwords.verify_async(password, user.password_hash if user else None)
        if user is None or not ok or user.disabled:
            failures = 1
            if user is not None and not ok:
                lock_until = now + timedelta(seconds=self.settings.login_lockout_seconds)
                async with self.db.session() as s, s.begin():
                    failures = await UserRepository(s).record_failure(
                        user.id, self.settings.login_max_failures, lock_until
                    )
            # Slow down guessing: each consecutive failure costs the caller more time.
            await asyncio.sleep(min(self.settings.login_failure_delay_seconds * failures, 2.0))
            raise Unauthorized(_BAD_LOGIN, code="invalid_credentials")
        async with self.db.session() as s, s.begin():
            await UserRepository(s).update(user.id, failed_logins=0, locked_until=None, last_login_at=now)
            refresh, _ = await self._new_refresh(s, user.id, family_id=None)
        access, expires_in, _ = self.jwt.issue(user.id, user.role, user.token_version)
        return TokenPair(access, expires_in, refresh)

    async def _new_refresh(self, s: Any, user_id: str, family_id: str | None) -> tuple[str, str]:
        """Insert a refresh token row; return ``(plaintext, row_id)``."""
        token = new_refresh_token()
        row = RefreshToken(
            user_id=user_id,
            token_hash=hash_refresh_token(self.pepper, token),
            expires_at=datetime.now(UTC) + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        )
        row.id = new_id()
        row.family_id = family_id or row.id
        await RefreshTokenRepository(s).add(row)
        return token, row.id

    async def refresh(self, refresh_token: str) -> TokenPair:
        self._require_issuer()
        """Rotate: the presented token is spent and a new one issued in the same family. Presenting
        an already-rotated token means it was stolen or replayed: the whole family is revoked."""
        now = datetime.now(UTC)
        error: str | None = None
        async with self.db.session() as s, s.begin():  # exceptions would roll back: collect, raise after
            repo = RefreshTokenRepository(s)
            row = await repo.by_hash_for_update(hash_refresh_token(self.pepper, refresh_token))
            user = await UserRepository(s).get(row.user_id) if row is not None else None
            if row is None or user is None:
                error = "Invalid refresh token."
            elif row.revoked_at is not None:
                if row.replaced_by is not None:
                    await repo.revoke_family(row.family_id, now)
                    error = "Refresh token already used; its session has been revoked."
                else:
                    error = "Refresh token revoked."
            elif row.expires_at <= now:
                error = "Refresh token expired."
            elif user.disabled:
                error = "Refresh token revoked."
            else:
                new_token, new_row_id = await self._new_refresh(s, user.id, family_id=row.family_id)
                row.revoked_at = now
                row.replaced_by = new_row_id
                role, user_id, version = user.role, user.id, user.token_version
        if error is not None:
            raise Unauthorized(error, code="invalid_refresh_token")
        access, expires_in, _ = self.jwt.issue(user_id, role, version)
        return TokenPair(access, expires_in, new_token)

    async def logout(
        self, refresh_token: str, access_jti: str | None = None, access_exp: int | None = None
    ) -> None:
        """Revoke the refresh token's family; the current access token too when given."""
        async with self.db.session() as s, s.begin():
            repo = RefreshTokenRepository(s)
            row = await repo.by_hash_for_update(hash_refresh_token(self.pepper, refresh_token))
            if row is not None:
                await repo.revoke_family(row.family_id, datetime.now(UTC))
        if access_jti and access_exp:
            await self.bus.publish("jti", f"{access_jti}:{access_exp}")

    # -- API keys ------------------------------------------------------------------------------
    def _default_spec(self, spec: KeySpec) -> KeySpec:
        """Self-service keys get the server defaults and may only tighten them."""
        s = self.settings

        def tighter(asked: int | None, default: int | None, field: str) -> int | None:
            if default is None:
                return asked
            if asked is None:
                return default
            if asked > default:
                raise Forbidden(f"{field} may not exceed the server default of {default}.", param=field)
            return asked

        return KeySpec(
            name=spec.name,
            expires_at=spec.expires_at,
            allowed_models=spec.allowed_models,
            requests_per_minute=tighter(spec.requests_per_minute, s.default_key_rpm, "requests_per_minute"),
            tokens_per_minute=tighter(spec.tokens_per_minute, s.default_key_tpm, "tokens_per_minute"),
            max_concurrent=tighter(spec.max_concurrent, s.default_key_max_concurrent, "max_concurrent"),
            monthly_token_budget=spec.monthly_token_budget,
        )

    async def create_key(
        self, user_id: str, spec: KeySpec, *, self_service: bool = False
    ) -> tuple[KeyView, str]:
        """Return the key's view and the plaintext key, which is never retrievable again."""
        if self_service:
            spec = self._default_spec(spec)
        _validate_spec(spec)
        user = await self.get_user(user_id)
        if user.disabled:
            raise Forbidden("User is disabled.")
        for _ in range(5):
            plaintext, prefix = api_keys.generate()
            row = ApiKey(
                user_id=user_id,
                name=spec.name,
                prefix=prefix,
                key_hash=api_keys.digest(self.pepper, plaintext).hex(),
                allowed_models=list(spec.allowed_models) if spec.allowed_models is not None else None,
                requests_per_minute=spec.requests_per_minute,
                tokens_per_minute=spec.tokens_per_minute,
                max_concurrent=spec.max_concurrent,
                monthly_token_budget=spec.monthly_token_budget,
                expires_at=spec.expires_at,
            )
            try:
                async with self.db.session() as s, s.begin():
                    await ApiKeyRepository(s).add(row)
                return KeyView.of(row), plaintext
            except IntegrityError:  # prefix collision (36^10 space): draw again
                continue
        raise Conflict("Could not allocate a unique key prefix.")

    async def list_keys(self, user_id: str | None = None, offset: int = 0, limit: int = 100) -> list[KeyView]:
        async with self.db.session() as s:
            return [KeyView.of(k) for k in await ApiKeyRepository(s).list(user_id, offset, limit)]

    async def get_key(self, key_id: str, owner_id: str | None = None) -> KeyView:
        async with self.db.session() as s:
            key = await ApiKeyRepository(s).get(key_id, owner_id)
        if key is None:
            raise NotFound("API key not found.")
        return KeyView.of(key)

    async def key_by_prefix(self, prefix: str) -> KeyView:
        async with self.db.session() as s:
            found = await ApiKeyRepository(s).by_prefix_with_user(prefix)
        if found is None:
            raise NotFound(f"No API key with prefix {prefix!r}.")
        return KeyView.of(found[0])

    async def revoke_key(self, key_id: str, owner_id: str | None = None) -> KeyView:
        key = await self.get_key(key_id, owner_id)
        if key.revoked_at is None:
            async with self.db.session() as s, s.begin():
                await ApiKeyRepository(s).update(key_id, revoked_at=datetime.now(UTC))
        await self.bus.publish("key", key_id)
        return await self.get_key(key_id, owner_id)

    async def update_key(self, key_id: str, spec: KeySpec, owner_id: str | None = None) -> KeyView:
        """Admin: replace name, expiry, models and limits of a key (effective everywhere at once)."""
        _validate_spec(spec)
        await self.get_key(key_id, owner_id)
        async with self.db.session() as s, s.begin():
            await ApiKeyRepository(s).update(
                key_id,
                name=spec.name,
                expires_at=spec.expires_at,
                allowed_models=list(spec.allowed_models) if spec.allowed_models is not None else None,
                requests_per_minute=spec.requests_per_minute,
                tokens_per_minute=spec.tokens_per_minute,
                max_concurrent=spec.max_concurrent,
                monthly_token_budget=spec.monthly_token_budget,
            )
        await self.bus.publish("key", key_id)
        return await self.get_key(key_id, owner_id)

    # -- usage ----------------------------------------------------------------------------------
    async def usage(
        self,
        group_by: Sequence[GroupBy],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        user_id: str | None = None,
        key_id: str | None = None,
        model: str | None = None,
    ) -> list[UsageAggregate]:
        async with self.db.session() as s:
            return await UsageRepository(s).aggregate(
                group_by, start=start, end=end, user_id=user_id, key_id=key_id, model=model
            )


def _validate_spec(spec: KeySpec) -> None:
    for field in ("requests_per_minute", "tokens_per_minute", "max_concurrent", "monthly_token_budget"):
        value = getattr(spec, field)
        if value is not None and value < 0:
            raise Unprocessable(f"{field} must be >= 0.", param=field)
    if spec.expires_at is not None:
        if spec.expires_at.tzinfo is None:
            raise Unprocessable("expires_at must include a timezone.", param="expires_at")
        if spec.expires_at <= datetime.now(UTC):
            raise Unprocessable("expires_at must be in the future.", param="expires_at")
    if len(spec.name) > 128:
        raise Unprocessable("name must be at most 128 characters.", param="name")
    if spec.allowed_models is not None and any(not m or len(m) > 128 for m in spec.allowed_models):
        raise Unprocessable("allowed_models entries must be 1-128 characters.", param="allowed_models")
