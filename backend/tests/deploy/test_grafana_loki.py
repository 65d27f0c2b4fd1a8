"""Grafana provisioning and dashboards load and are consistent; Loki and Promtail configs parse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DASHBOARDS, DOCKER, MONITORING, typescript_check

PROVISIONING = MONITORING / "grafana" / "provisioning"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in DASHBOARD_FILES}


def test_the_four_dashboards_exist(boards: dict[str, dict[str, Any]]) -> None:
    assert set(boards) == {"gateway", "llm-serving", "rag", "usage"}
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)


def test_datasources_provisioned() -> None:
    spec = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    by_uid = {d["uid"]: d for d in spec["datasources"]}
    assert by_uid["prometheus"]["type"] == "prometheus" and by_uid["prometheus"]["isDefault"]
    assert by_uid["loki"]["type"] == "loki"
    assert by_uid["nova-postgres"]["type"] == "grafana-postgresql-datasource"
    assert by_uid["nova-postgres"]["secureJsonData"]["password"] == "$GRAFANA_DB_PASSWORD"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())["providers"]
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = providers[0]["options"]["path"]
    assert any(m.endswith(f":{path}:ro") and "monitoring/grafana/dashboards" in m for m in mounts)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_structure(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["schemaVersion"] >= 36 and board["title"].startswith("Nova / ")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    grid: set[tuple[int, int]] = set()
    for p in panels(board):
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
        cells = {(pos["y"] + dy, pos["x"] + dx) for dy in range(pos["h"]) for dx in range(pos["w"])}
        assert not grid & cells, f"panel {p['title']!r} overlaps another"
        grid |= cells
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in p["targets"]:
            if (
                "rawSql" in t
            ):  # Postgres usage panels (checked against a migrated database in test_live_metrics)
                assert t["datasource"]["uid"] == p["datasource"]["uid"] == "nova-postgres", p["title"]
                continue
            assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}", p["title"]
            used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval", "__interval", "__range"}
            assert used <= variables.keys(), f"{p['title']}: unknown variables {used - variables.keys()}"


# JSON strings whose TypeScript type is an enum: written as the enum member in the generated source.
TS_ENUMS = {
    ("thresholds", "mode"): {"absolute": "ThresholdsMode.Absolute", "percentage": "ThresholdsMode.Percentage"}
}


def dashboard_ts(board: dict[str, Any]) -> str:
    """The dashboard as a TypeScript literal typed with Grafana's published `Dashboard` schema."""

    def walk(node: Any, parent: str | None = None) -> Any:
        if isinstance(node, dict):
            return {
                k: f"@@{TS_ENUMS[(parent, k)][v]}@@"
                if (parent, k) in TS_ENUMS and isinstance(v, str)
                else walk(v, k)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(x, parent) for x in node]
        return node

    body = re.sub(r'"@@([\w.]+)@@"', r"\1", json.dumps(walk(board), indent=1))
    return (
        'import { ThresholdsMode } from "@grafana/schema";\n'
        'import type { Dashboard } from "@grafana/schema";\n'
        f"export const dashboard: Dashboard = {body};\n"
    )


def test_dashboards_match_grafanas_schema(boards: dict[str, dict[str, Any]]) -> None:
    proc = typescript_check({f"{name}.ts": dashboard_ts(board) for name, board in boards.items()})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_schema_check_catches_mistakes(boards: dict[str, dict[str, Any]]) -> None:
    typo = json.loads(json.dumps(boards["rag"]))
    typo["panels"][1]["gridPoss"] = typo["panels"][1].pop("gridPos")
    wrong = json.loads(json.dumps(boards["rag"]))
    wrong["panels"][1]["gridPos"]["w"] = "12"
    for bad in (typo, wrong):
        assert typescript_check({"bad.ts": dashboard_ts(bad)}).returncode != 0


def test_loki_and_promtail_configs() -> None:
    loki = yaml.safe_load((MONITORING / "loki" / "loki.yml").read_text())
    assert loki["server"]["http_listen_port"] == 3100
    assert loki["schema_config"]["configs"][0]["store"] == "tsdb"
    promtail = yaml.safe_load((MONITORING / "loki" / "promtail.yml").read_text())
    assert promtail["clients"][0]["url"] == "http://loki:3100/loki/api/v1/push"
    stages = promtail["scrape_configs"][0]["pipeline_stages"]
    json_stage = stages[0]["match"]["stages"][0]["json"]["expressions"]
    assert "request_id" in json_stage  # JSON logs carry the request id (nova.observability.logging)
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    assert any("monitoring/loki/loki.yml" in v for v in compose["services"]["loki"]["volumes"])
    assert any("monitoring/loki/promtail.yml" in v for v in compose["services"]["promtail"]["volumes"])
