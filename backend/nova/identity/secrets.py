"""Server secrets (API-key pepper, JWT HS256 secret).

With ``env=prod`` (compose, K3s) they must be configured: a deployment never runs on a secret it
made up. In dev (the embedded default) and test they are generated once and kept in
``data_dir/secrets.json`` (mode 0600) so keys and tokens survive restarts.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from nova.config import Settings

_MIN_LENGTH = 32


class SecretsError(RuntimeError):
    """A required secret is missing or too weak; raised at startup, never per request."""


def _dev_secret(settings: Settings, name: str) -> str:
    path: Path = settings.data_dir / "secrets.json"
    data: dict[str, str] = {}
    if path.exists():
        data = json.loads(path.read_text())
    if name not in data:
        data[name] = secrets.token_urlsafe(48)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        tmp.replace(path)
    return data[name]


def _resolve(settings: Settings, value: str | None, name: str, env_name: str) -> str:
    if value:
        if len(value) < _MIN_LENGTH:
            raise SecretsError(f"{env_name} must be at least {_MIN_LENGTH} characters")
        return value
    if settings.env != "prod":
        return _dev_secret(settings, name)
    raise SecretsError(f"{env_name} must be set when NOVA_ENV={settings.env}")


def key_pepper(settings: Settings) -> bytes:
    value = settings.secret_key.get_secret_value() if settings.secret_key else None
    return _resolve(settings, value, "secret_key", "NOVA_SECRET_KEY").encode()


def jwt_hs_secret(settings: Settings) -> str:
    value = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    return _resolve(settings, value, "jwt_secret", "NOVA_JWT_SECRET")
