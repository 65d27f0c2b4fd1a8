"""API key format and hashing.

A key looks like ``nova-<prefix>-<secret>``: the 10-character prefix is stored in clear (so a key
can be found and shown in listings), the whole key only as HMAC-SHA256 under the server pepper
(``NOVA_SECRET_KEY``), so a leaked database does not yield usable keys, nor can they be brute
forced offline without the pepper.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

PREFIX_LENGTH = 10
SECRET_LENGTH = 40
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(rf"nova-([a-z0-9]{{{PREFIX_LENGTH}}})-[A-Za-z0-9]{{{SECRET_LENGTH}}}")


def generate() -> tuple[str, str]:
    """Return ``(full_key, prefix)``; the full key is shown once and never stored."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return f"nova-{prefix}-{secret}", prefix


def digest(pepper: bytes, key: str) -> bytes:
    return hmac.digest(pepper, key.encode(), hashlib.sha256)


def parse_prefix(key: str) -> str | None:
    m = KEY_PATTERN.fullmatch(key)
    return m.group(1) if m else None


def display(prefix: str) -> str:
    """What listings show instead of the key."""
    return f"nova-{prefix}-…"
