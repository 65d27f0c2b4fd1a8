"""The contract between the relay and rate limiting.

Before calling an upstream the relay asks for a ``Lease`` (reserving a request slot and an
estimate of tokens); after the call it settles the lease with the real token count. Limits that
refuse raise ``RateLimited`` with ``Retry-After`` and ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

from typing import Protocol

from nova.identity.principal import Principal


class Lease(Protocol):
    headers: dict[str, str]

    async def settle(self, actual_tokens: int) -> None:
        """Replace the reserved token estimate with what was really used; free the slot."""
        ...


class Admission(Protocol):
    async def acquire(self, principal: Principal, model: str, estimated_tokens: int) -> Lease: ...


class _OpenLease:
    __slots__ = ("headers",)

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    async def settle(self, actual_tokens: int) -> None:
        return None


class Unlimited:
    """Admission without limits (the bootstrap principal, or limits disabled)."""

    _lease = _OpenLease()

    async def acquire(self, principal: Principal, model: str, estimated_tokens: int) -> Lease:
        return self._lease
