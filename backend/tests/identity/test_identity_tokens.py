"""JWT verification against the attacks the issue lists, for HS256 and RS256 deployments."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from nova.config import Settings
from nova.errors import Unauthorized
from nova.identity.secrets import SecretsError
from nova.identity.tokens import JwtCodec

SECRET = "s" * 48


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c = {"sub": "u1", "role": "user", "iss": "nova", "aud": "nova-api", "iat": now, "exp": now + 60,
         "jti": "j1", "typ": "access"}  # fmt: skip
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


@pytest.fixture
def hs() -> JwtCodec:
    return JwtCodec(Settings(env="test", jwt_secret=SECRET))


@pytest.fixture(scope="module")
def rsa_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    d = tmp_path_factory.mktemp("rsa")
    priv, pub = d / "private.pem", d / "public.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


@pytest.fixture
def rs(rsa_files: tuple[Path, Path]) -> JwtCodec:
    priv, pub = rsa_files
    return JwtCodec(
        Settings(env="test", jwt_algorithm="RS256", jwt_private_key_file=priv, jwt_public_key_file=pub)
    )


def test_roundtrip_hs256(hs: JwtCodec) -> None:
    token, ttl, jti = hs.issue("u1", "admin")
    claims = hs.verify(token)
    assert (claims.user_id, claims.role, claims.jti) == ("u1", "admin", jti)
    assert ttl == 900 and claims.expires_at > time.time()


def test_roundtrip_rs256(rs: JwtCodec) -> None:
    token, _, _ = rs.issue("u2", "user")
    assert rs.verify(token).user_id == "u2"


def test_secret_required_in_prod() -> None:
    with pytest.raises(SecretsError):
        JwtCodec(Settings(env="prod"))
    with pytest.raises(SecretsError):
        JwtCodec(Settings(env="prod", jwt_secret="short"))


def test_dev_secret_is_generated_once(tmp_path: Path) -> None:
    a = JwtCodec(Settings(env="dev", data_dir=tmp_path))
    b = JwtCodec(Settings(env="dev", data_dir=tmp_path))
    assert b.verify(a.issue("u", "user")[0]).user_id == "u"
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_alg_none_rejected(hs: JwtCodec) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(role="admin")).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}.x", f"{header}.{payload}.{_b64(b'sig')}"):
        with pytest.raises(Unauthorized):
            hs.verify(token)


def test_wrong_signature_rejected(hs: JwtCodec) -> None:
    token = jwt.encode(_claims(), "x" * 48, algorithm="HS256")
    with pytest.raises(Unauthorized):
        hs.verify(token)


def test_expired_rejected(hs: JwtCodec) -> None:
    now = int(time.time())
    token = jwt.encode(_claims(iat=now - 3600, exp=now - 600), SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="xpired"):
        hs.verify(token)


@pytest.mark.parametrize(
    "over",
    [{"aud": "other"}, {"iss": "evil"}, {"aud": None}, {"iss": None}, {"exp": None}, {"iat": None},
     {"jti": None}, {"sub": None}, {"typ": "refresh"}, {"role": "root"},
     {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}],
)  # fmt: skip
def test_bad_or_missing_claims_rejected(hs: JwtCodec, over: dict[str, Any]) -> None:
    token = jwt.encode(_claims(**over), SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        hs.verify(token)


def test_hs256_signed_with_rs256_public_key_rejected(rs: JwtCodec, rsa_files: tuple[Path, Path]) -> None:
    """Key confusion: attacker signs HS256 using the public key (which they know) as the secret."""
    import hashlib
    import hmac

    public_pem = rsa_files[1].read_bytes()
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(role="admin")).encode())
    sig = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(Unauthorized):
        rs.verify(f"{header}.{payload}.{sig}")


def test_rs256_token_on_hs256_server_rejected(hs: JwtCodec, rs: JwtCodec) -> None:
    token, _, _ = rs.issue("u1", "admin")
    with pytest.raises(Unauthorized):
        hs.verify(token)


def test_tampered_payload_rejected(hs: JwtCodec, rs: JwtCodec) -> None:
    for codec in (hs, rs):
        token, _, _ = codec.issue("u1", "user")
        h, p, s = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        claims["role"] = "admin"
        forged = f"{h}.{_b64(json.dumps(claims).encode())}.{s}"
        with pytest.raises(Unauthorized):
            codec.verify(forged)


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c", "....", "eyJ.eyJ.", "x" * 5000 + ".a.b", "é.é.é"])
def test_malformed_rejected(hs: JwtCodec, garbage: str) -> None:
    with pytest.raises(Unauthorized):
        hs.verify(garbage)


def test_verify_only_process_cannot_issue(rsa_files: tuple[Path, Path]) -> None:
    codec = JwtCodec(Settings(env="test", jwt_algorithm="RS256", jwt_public_key_file=rsa_files[1]))
    with pytest.raises(SecretsError):
        codec.issue("u", "user")
