"""Two real gateway processes (``nova serve``) sharing Postgres and Redis: a 600 requests/min key
gets 2,000 requests spread over both and exactly 600 are admitted; tokens/min likewise; a key
revoked through one gateway is refused by the other at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nova.config import Settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway import ADMIN_KEY, free_port, write_models_file

PW = "Correct-horse-9"


@pytest.fixture
def two_gateways(
    fake: FakeUpstream, migrated: dict[str, Settings], namespace: str, redis_url: str, tmp_path: Path
) -> Iterator[list[str]]:
    pg = migrated["postgres"]
    models = write_models_file(
        tmp_path / "models.yaml", {"fake-model": {"deployments": [{"base_url": fake.base_url}]}}
    )
    procs, urls, logs = [], [], []
    for i in range(2):
        port = free_port()
        env = {
            **os.environ,
            "NOVA_ENV": "test",
            "NOVA_PORT": str(port),
            "NOVA_DATA_DIR": str(tmp_path / f"gw{i}"),
            "NOVA_MODELS_FILE": str(models),
            "NOVA_ADMIN_API_KEY": ADMIN_KEY,
            "NOVA_SECRET_KEY": pg.secret_key.get_secret_value(),  # type: ignore[union-attr]
            "NOVA_JWT_SECRET": pg.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
            "NOVA_DATABASE_URL": str(pg.database_url),
            "NOVA_DATABASE_SCHEMA": str(pg.database_schema),
            "NOVA_REDIS_URL": redis_url,
            "NOVA_REDIS_NAMESPACE": namespace,
            "NOVA_LOG_LEVEL": "WARNING",
            # This shared 2-core machine is very slow at times; a timeout would fail open and
            # blur the exactness being tested (fail-open itself is tested in the contract tests).
            "NOVA_REDIS_SOCKET_TIMEOUT": "2",
        }
        cmd = [sys.executable, "-m", "nova.cli", "serve"]
        log = (tmp_path / f"gw{i}.log").open("wb")
        logs.append(log)
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        for url, p in zip(urls, procs, strict=True):
            while True:
                assert p.poll() is None, (tmp_path / f"gw{urls.index(url)}.log").read_text()
                try:
                    if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "gateway did not become ready"
                time.sleep(0.2)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def _key(url: str, unique: Callable[[str], str], **limits: Any) -> tuple[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    uid = httpx.post(
        f"{url}/admin/users", headers=admin, json={"username": unique("two"), "password": PW}
    ).json()["id"]
    r = httpx.post(f"{url}/admin/keys", headers=admin, json={"user_id": uid, **limits})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


async def _blast(urls: list[str], key: str, n: int, body: dict[str, Any]) -> dict[int, int]:
    counts: dict[int, int] = {}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        sem = asyncio.Semaphore(48)

        async def one(i: int) -> None:
            async with sem:
                r = await client.post(f"{urls[i % 2]}/v1/chat/completions",
                                      headers={"Authorization": f"Bearer {key}"}, json=body)  # fmt: skip
                counts[r.status_code] = counts.get(r.status_code, 0) + 1

        await asyncio.gather(*(one(i) for i in range(n)))
    return counts


async def test_requests_and_tokens_per_minute_hold_across_two_gateways(
    two_gateways: list[str], unique: Callable[[str], str]
) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    _, key = _key(two_gateways[0], unique, requests_per_minute=600)
    counts = await _blast(two_gateways, key, 2000, body)
    print(f"rpm 600 via two gateways: {counts}")
    assert set(counts) == {200, 429} and abs(counts[200] - 600) <= 6

    # Tokens: each request reserves an estimate (prompt bytes / 4 + max_tokens, ~30 here) and settles
    # to the real usage (9 from the fake upstream), so the real total approaches the limit from
    # below and never exceeds it.
    key_id, key = _key(two_gateways[1], unique, tokens_per_minute=3000)
    counts = await _blast(two_gateways, key, 600, body)
    print(f"tpm 3000 via two gateways: {counts}")
    assert counts[200] > 0 and counts[429] > 0
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient() as client:
        for _ in range(50):  # usage rows are written in batches off the response path
            r = await client.get(f"{two_gateways[0]}/admin/usage?group_by=key&key_id={key_id}", headers=admin)
            rows = r.json()["data"]
            if rows and rows[0]["requests"] == 600:
                break
            await asyncio.sleep(0.1)
    assert rows[0]["requests"] == 600 and rows[0]["errors"] == counts[429]
    used = rows[0]["total_tokens"]
    print(f"tokens admitted under tpm 3000: {used}")
    assert 3000 * 0.65 <= used <= 3000


def test_revoke_on_one_gateway_rejected_by_the_other(
    two_gateways: list[str], unique: Callable[[str], str]
) -> None:
    a, b = two_gateways
    key_id, key = _key(a, unique)
    h = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{b}/v1/auth/me", headers=h).status_code == 200  # cached in b
    assert httpx.delete(f"{a}/v1/keys/{key_id}", headers=h).status_code == 200
    revoked_at = time.monotonic()
    while httpx.get(f"{b}/v1/auth/me", headers=h).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, (
            "revoked key still accepted by the other gateway after 1 s"
        )
        time.sleep(0.01)
