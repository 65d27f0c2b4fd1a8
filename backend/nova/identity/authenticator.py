"""Turning a bearer credential into a ``Principal``.

The HTTP layer depends only on the ``Authenticator`` protocol; ``StoreAuthenticator``
(API keys and JWTs, cached) is the implementation.
"""

from __future__ import annotations

from typing import Protocol

from nova.identity.principal import Principal


class Authenticator(Protocol):
    async def authenticate(self, credential: str) -> Principal:
        """Return the principal for a bearer credential or raise ``Unauthorized``."""
        ...
