"""promtool: the compose scrape config, the alert rules, and the rule unit tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.conftest import PROM_DIR, run, tool

RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
REQUIRED_ALERTS = {
    "NovaHighErrorRate",
    "NovaTTFTP95High",
    "NovaUpstreamUnhealthy",
    "NovaModelUnavailable",
    "NovaRateLimitSurge",
    "ScrapeTargetDown",
    "VllmKVCacheFull",
    "VllmRequestsWaiting",
    "DiskSpaceLow",
}


def local_config(tmp_path: Path) -> Path:
    """The compose config with its container paths (rules, secret) pointed at files here."""
    key = tmp_path / "qdrant_api_key"
    key.write_text("test")
    text = (PROM_DIR / "prometheus.yml").read_text()
    text = text.replace("/run/secrets/qdrant_api_key", str(key)).replace(
        "/etc/prometheus/rules/*.yml", str(PROM_DIR / "rules" / "*.yml")
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    return path


def test_scrape_config(tmp_path: Path) -> None:
    proc = run([tool("promtool"), "check", "config", str(local_config(tmp_path))])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = {
        j["job_name"] for j in yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert {"gateway", "rag", "vllm", "redis", "postgres"} <= jobs


def test_rules_are_valid_and_cover_the_required_alerts() -> None:
    proc = run([tool("promtool"), "check", "rules", *map(str, RULE_FILES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = {
        r["alert"]
        for f in RULE_FILES
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert REQUIRED_ALERTS <= alerts, REQUIRED_ALERTS - alerts


def test_rule_unit_tests_pass_and_cover_every_alert() -> None:
    assert RULE_TESTS
    proc = run([tool("promtool"), "test", "rules", *map(str, RULE_TESTS)], cwd=PROM_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = {
        case["alertname"]
        for f in RULE_TESTS
        for t in yaml.safe_load(f.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert REQUIRED_ALERTS <= tested, f"alerts never shown firing in a unit test: {REQUIRED_ALERTS - tested}"


def test_rule_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    spec = yaml.safe_load(RULE_TESTS[0].read_text())
    spec["rule_files"] = [str((RULE_TESTS[0].parent / f).resolve()) for f in spec["rule_files"]]
    case = next(c for t in spec["tests"] for c in t.get("alert_rule_test", []) if c.get("exp_alerts"))
    case["exp_alerts"] = []
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(spec))
    assert run([tool("promtool"), "test", "rules", str(broken)]).returncode != 0
