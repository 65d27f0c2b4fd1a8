"""``nova migrate | user | key`` through the real CLI entry point (SQLite in a temp data dir)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from nova.cli import main
from nova.config import Settings
from nova.identity.components import build_identity


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_user_and_key_lifecycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOVA_ENV", "dev")
    monkeypatch.setenv("NOVA_DATA_DIR", str(tmp_path))
    for name in ("NOVA_DATABASE_URL", "NOVA_DATABASE_SCHEMA", "NOVA_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)

    code, out, _ = run(capsys, "migrate")
    assert code == 0 and "database at" in out

    monkeypatch.setattr("sys.stdin", io.StringIO("Str0ng-password!\n"))
    code, out, _ = run(capsys, "user", "create", "Alice", "--password-stdin", "--json")
    assert code == 0 and json.loads(out)["username"] == "alice"
    monkeypatch.setattr("sys.stdin", io.StringIO("weak\n"))
    code, _, err = run(capsys, "user", "create", "bob", "--password-stdin")
    assert code == 1 and "Password" in err
    code, _, err = run(capsys, "user", "create", "alice", "--no-password")
    assert code == 1 and "already exists" in err

    limits = ["--rpm", "60", "--tpm", "1000", "--concurrency", "2", "--monthly-budget", "5000"]
    code, out, _ = run(
        capsys,
        "key",
        "create",
        "alice",
        "--name",
        "ci",
        "--models",
        "a,b",
        *limits,
        "--expires-days",
        "7",
        "--json",
    )
    created = json.loads(out)
    assert code == 0 and created["key"].startswith("nova-") and created["allowed_models"] == ["a", "b"]
    assert created["requests_per_minute"] == 60 and created["expires_at"]

    async def authenticate(key: str) -> str:
        c = build_identity(Settings())
        try:
            return (await c.authenticator.authenticate(key)).user_id
        finally:
            await c.stop()

    assert asyncio.run(authenticate(created["key"])) == created["user_id"]

    code, out, _ = run(capsys, "key", "list", "--user", "alice", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]

    prefix = created["key"].split("-")[1]
    code, out, _ = run(capsys, "key", "revoke", prefix, "--json")
    assert code == 0 and json.loads(out)["active"] is False
    code, _, err = run(capsys, "key", "revoke", "zzzzzzzzzz")
    assert code == 1 and "No API key" in err

    code, out, _ = run(capsys, "user", "disable", "alice", "--json")
    assert code == 0 and json.loads(out)["disabled"] is True
    code, out, _ = run(capsys, "user", "list")
    assert "alice" in out and "True" in out
