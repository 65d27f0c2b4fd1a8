"""JWT access tokens (python-jose) and opaque refresh tokens.

Verification pins the algorithm from Settings before python-jose sees the token, so ``alg:
none``, HS256 tokens on an RS256 deployment (signed with the public key) and any other header
trickery fail before signature checking; ``iss``, ``aud``, ``exp``, ``iat``, ``jti`` and ``sub`` are
required.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from jose import jwt
from jose.exceptions import JOSEError

from nova.config import Settings
from nova.errors import Unauthorized
from nova.identity.secrets import SecretsError, jwt_hs_secret

_LEEWAY_SECONDS = 30
REFRESH_PREFIX = "nova-rt-"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    role: str
    jti: str
    expires_at: int
    version: int = 0  # the user's token_version when issued


class JwtCodec:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.ttl = settings.access_token_ttl_seconds
        self._signing_key: str | None
        if self.algorithm == "HS256":
            self._signing_key = self._verify_key = jwt_hs_secret(settings)
        else:
            if settings.jwt_public_key_file is None:
                raise SecretsError("RS256 needs NOVA_JWT_PUBLIC_KEY_FILE (and a private key to issue tokens)")
            self._verify_key = settings.jwt_public_key_file.read_text()
            self._signing_key = (
                settings.jwt_private_key_file.read_text() if settings.jwt_private_key_file else None
            )

    @property
    def can_issue(self) -> bool:
        return self._signing_key is not None

    def issue(self, user_id: str, role: str, version: int = 0) -> tuple[str, int, str]:
        """Return ``(token, expires_in_seconds, jti)``."""
        if self._signing_key is None:
            raise SecretsError("no JWT private key configured: this process can verify but not issue tokens")
        now = int(time.time())
        jti = secrets.token_hex(16)
        claims = {
            "sub": user_id,
            "role": role,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": jti,
            "typ": "access",
            "ver": version,
        }
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm), self.ttl, jti

    def verify(self, token: str) -> AccessClaims:
        header = _header(token)
        if header.get("alg") != self.algorithm:
            raise Unauthorized("Invalid token: unexpected algorithm.")
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_jti": True,
                    "require_sub": True,
                    "require_aud": True,
                    "require_iss": True,
                    "leeway": _LEEWAY_SECONDS,
                },
            )
        except JOSEError as exc:
            raise Unauthorized(f"Invalid token: {exc}.") from None
        if claims.get("typ") != "access":
            raise Unauthorized("Invalid token: not an access token.")
        if int(claims["iat"]) > time.time() + _LEEWAY_SECONDS:
            raise Unauthorized("Invalid token: issued in the future.")
        role = claims.get("role")
        if role not in ("admin", "user"):
            raise Unauthorized("Invalid token: bad role.")
        version = claims.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise Unauthorized("Invalid token: bad version.")
        return AccessClaims(str(claims["sub"]), role, str(claims["jti"]), int(claims["exp"]), version)


def _header(token: str) -> dict[str, object]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise Unauthorized("Invalid token: malformed.")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise Unauthorized("Invalid token: malformed header.") from None
    if not isinstance(header, dict):
        raise Unauthorized("Invalid token: malformed header.")
    return header


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(48)


def hash_refresh_token(pepper: bytes, token: str) -> str:
    return hmac.new(pepper, token.encode(), hashlib.sha256).hexdigest()
