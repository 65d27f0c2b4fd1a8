"""The authenticated caller, as every other module sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["admin", "user"]


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Per-key quotas; ``None`` means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    monthly_token_budget: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    key_id: str | None = None
    allowed_models: frozenset[str] | None = None
    limits: KeyLimits = field(default_factory=KeyLimits)
    user_requests_per_minute: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models
