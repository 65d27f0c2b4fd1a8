"""Request/response shapes shared by the key and admin routers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from nova.errors import Unprocessable
from nova.identity.service import KeySpec, KeyView, UserView
from nova.store.repos.usage import UsageAggregate


class KeyCreate(BaseModel):
    name: str = Field(default="", max_length=128)
    expires_at: datetime | None = None
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)
    allowed_models: list[str] | None = Field(default=None, max_length=256)
    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)
    max_concurrent: int | None = Field(default=None, ge=0)
    monthly_token_budget: int | None = Field(default=None, ge=0)

    def spec(self) -> KeySpec:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise Unprocessable("Give expires_at or expires_in_days, not both.", param="expires_at")
        expires = self.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if self.expires_in_days is not None:
            expires = datetime.now(UTC) + timedelta(days=self.expires_in_days)
        return KeySpec(
            name=self.name,
            expires_at=expires,
            allowed_models=self.allowed_models,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            max_concurrent=self.max_concurrent,
            monthly_token_budget=self.monthly_token_budget,
        )


def key_out(k: KeyView, plaintext: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": k.id,
        "object": "api_key",
        "user_id": k.user_id,
        "name": k.name,
        "prefix": k.display,
        "active": k.active,
        "allowed_models": k.allowed_models,
        "requests_per_minute": k.requests_per_minute,
        "tokens_per_minute": k.tokens_per_minute,
        "max_concurrent": k.max_concurrent,
        "monthly_token_budget": k.monthly_token_budget,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
        "last_used_at": k.last_used_at,
    }
    if plaintext is not None:
        out["key"] = plaintext  # the only time the key is ever returned
    return out


def user_out(u: UserView) -> dict[str, Any]:
    return {
        "id": u.id,
        "object": "user",
        "username": u.username,
        "role": u.role,
        "disabled": u.disabled,
        "requests_per_minute": u.requests_per_minute,
        "created_at": u.created_at,
        "last_login_at": u.last_login_at,
    }


def usage_out(rows: list[UsageAggregate], start: datetime | None, end: datetime | None) -> dict[str, Any]:
    return {
        "object": "list",
        "start": start,
        "end": end,
        "data": [
            {
                **r.group,
                "requests": r.requests,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "total_tokens": r.prompt_tokens + r.completion_tokens,
                "errors": r.errors,
                "avg_latency_ms": r.avg_latency_ms,
            }
            for r in rows
        ],
    }


def parse_group_by(raw: str, allowed: tuple[str, ...]) -> list[Any]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    bad = [p for p in parts if p not in allowed]
    if bad or len(set(parts)) != len(parts):
        raise Unprocessable(
            f"group_by takes a comma-separated subset of {', '.join(allowed)}.", param="group_by"
        )
    return parts


def utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt
