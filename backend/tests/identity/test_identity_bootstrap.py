"""First start of the embedded default: an admin and a key, printed once; backends follow Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from nova.config import Settings
from nova.identity.components import WithBootstrapKey, build_identity
from nova.limits.memory_backend import MemoryAdmission
from nova.limits.redis_backend import RedisAdmission


async def test_first_start_creates_admin_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(env="dev", data_dir=tmp_path)  # embedded default: SQLite, generated secrets
    first = build_identity(settings)
    await first.start()
    key = first.first_admin_key
    assert key is not None and key in capsys.readouterr().out
    principal = await first.authenticator.authenticate(key)
    assert principal.is_admin
    assert isinstance(first.admission, MemoryAdmission)
    await first.stop()

    again = build_identity(Settings(env="dev", data_dir=tmp_path))
    await again.start()
    assert again.first_admin_key is None and key not in capsys.readouterr().out
    assert (await again.authenticator.authenticate(key)).is_admin  # same secrets, same database
    await again.stop()


async def test_backends_follow_settings(tmp_path: Path, redis_url: str) -> None:
    c = build_identity(Settings(env="test", data_dir=tmp_path, secret_key="k" * 40, jwt_secret="j" * 40,
                                redis_url=redis_url, admin_api_key="operator-break-glass-key"))  # fmt: skip
    assert isinstance(c.admission, RedisAdmission)
    assert isinstance(c.authenticator, WithBootstrapKey)
    assert (await c.authenticator.authenticate("operator-break-glass-key")).key_id == "bootstrap"
    await c.stop()
    with pytest.raises(RuntimeError, match="NOVA_SECRET_KEY"):
        build_identity(Settings(env="prod", data_dir=tmp_path))
