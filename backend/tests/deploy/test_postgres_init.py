"""The compose Postgres init script: Grafana's role can read the usage tables `nova migrate` creates
later, and can change nothing. Runs against the real local Postgres in a throwaway database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.deploy.conftest import DOCKER, run

SCRIPT = DOCKER / "postgres" / "initdb" / "10-grafana-reader.sh"


def psql(sql: str, *, user: str = "postgres", db: str = "postgres") -> tuple[int, str]:
    proc = run(["psql", "-h", "127.0.0.1", "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def cluster(services: None) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "owner": f"nova_owner_{suffix}",
        "db": f"nova_init_{suffix}",
        "reader": f"grafana_reader_{suffix}",
    }
    # The image's POSTGRES_USER is a superuser that owns the database; mirror that.
    assert psql(f"CREATE ROLE {names['owner']} LOGIN SUPERUSER")[0] == 0
    assert psql(f"CREATE DATABASE {names['db']} OWNER {names['owner']}")[0] == 0
    try:
        yield names
    finally:
        psql(f"DROP DATABASE IF EXISTS {names['db']}")
        psql(f"DROP ROLE IF EXISTS {names['reader']}")
        psql(f"DROP ROLE IF EXISTS {names['owner']}")


def test_grafana_reader_can_read_usage_and_nothing_more(cluster: dict[str, str]) -> None:
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "POSTGRES_USER": cluster["owner"],
        "POSTGRES_DB": cluster["db"],
        "GRAFANA_DB_USER": cluster["reader"],
        "GRAFANA_DB_PASSWORD": "test-reader-password-0123456789abcdef",
    }
    proc = run(["sh", str(SCRIPT)], env=env)
    assert proc.returncode == 0, proc.stderr
    # What `nova migrate` does afterwards, as the owner.
    rc, out = psql(
        "CREATE TABLE usage_events (id bigserial PRIMARY KEY, user_id text, prompt_tokens int);"
        "INSERT INTO usage_events (user_id, prompt_tokens) VALUES ('u1', 5)",
        user=cluster["owner"],
        db=cluster["db"],
    )
    assert rc == 0, out
    rc, out = psql("SELECT sum(prompt_tokens) FROM usage_events", user=cluster["reader"], db=cluster["db"])
    assert (rc, out.strip()) == (0, "5")
    for sql in (
        "INSERT INTO usage_events (user_id, prompt_tokens) VALUES ('u2', 1)",
        "DELETE FROM usage_events",
        "CREATE TABLE sneaky (x int)",
    ):
        rc, out = psql(sql, user=cluster["reader"], db=cluster["db"])
        assert rc != 0 and "permission denied" in out, sql


def test_init_script_requires_the_password(cluster: dict[str, str]) -> None:
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "POSTGRES_USER": cluster["owner"],
        "POSTGRES_DB": cluster["db"],
    }
    env.pop("GRAFANA_DB_PASSWORD", None)
    proc = run(["sh", str(SCRIPT)], env=env)
    assert proc.returncode != 0 and "GRAFANA_DB_PASSWORD" in proc.stderr
