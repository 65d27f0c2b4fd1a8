"""A real Prometheus scrapes a running gateway, rag service and vLLM (the fake upstream) that have
served traffic. Every PromQL expression of every dashboard panel and template variable, every alert
rule and the KEDA trigger is evaluated through Prometheus' HTTP API and must parse; every ``nova_*``
series a dashboard or rule uses must exist, and every gateway/RAG/usage panel must return data.

The services start with the commands their images run (Dockerfile CMD / compose ``command``) and the
environment compose gives them, with only addresses, ports and data paths changed for this machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.conftest import (
    DASHBOARDS,
    DOCKER,
    K8S,
    PROM_DIR,
    VENV_BIN,
    Dockerfile,
    compose_binary,
    fill_env_example,
    gateway_image_site,
    run,
    tool,
)
from tests.fakes.upstream import Behavior, FakeUpstream

pytestmark = pytest.mark.timeout(600)

ADMIN_KEY = "sk-deploy-test-admin-0123456789abcdef"
TENANT = "deploy-test"
# Grafana's built-in variables and the dashboards' own, as Grafana substitutes them for "All".
GRAFANA_VARS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "model": ".*",
    "model_name": ".*",
}
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-v", "ON_ERROR_STOP=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}; see its log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{what} not ready at {url} within {timeout} s")


@dataclass
class Stack:
    tmp: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    gateway_url: str = ""
    schema: str = ""
    limited_key: str = ""
    limited_statuses: list[int] = field(default_factory=list)
    rag_url: str = ""
    rag_token: str = ""
    prom_url: str = ""
    fake: FakeUpstream | None = None

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` as the image would (console scripts from the venv), output to ``name``.log."""
        exe = argv[0]
        if "/" not in exe:
            exe = str(VENV_BIN / exe) if (VENV_BIN / exe).exists() else tool(exe)
        with open(self.tmp / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [exe, *argv[1:]],
                env=env,
                cwd=self.tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self.fake is not None:
            self.fake.stop()


def compose_environment(service: str, tmp: Path) -> dict[str, str]:
    """The environment compose gives ``service`` (resolved with the example .env filled in)."""
    env_file = tmp / "compose.env"
    env_file.write_text(
        fill_env_example(
            DOCKER / ".env.example",
            overrides={
                "COMPOSE_PROFILES": "cpu",
                "NOVA_DOMAIN": "nova.test",
                "NOVA_ADMIN_API_KEY": ADMIN_KEY,
            },
        )
    )
    proc = run(
        [
            compose_binary(),
            "-f",
            str(DOCKER / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)["services"][service].get("environment") or {}
    return {k: str(v) for k, v in env.items() if v is not None}


def dockerfile_env(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in Dockerfile.parse(DOCKER / name / "Dockerfile").all("ENV"):
        for part in rest.split():
            k, sep, v = part.partition("=")
            if sep and not v.startswith("$"):
                env[k] = v
    return env


def psql(sql: str) -> None:
    proc = run([*PSQL, "-c", sql])
    assert proc.returncode == 0, proc.stderr


def local_env(base: dict[str, str], tmp: Path, schema: str, **extra: str) -> dict[str, str]:
    """Container environment with this machine's addresses: local Postgres (own schema), Redis
    (own namespace), embedded vector store, and no network for model hubs: the production BGE
    embedder and reranker the compose file names cannot be downloaded here, so the rag service
    runs the bundled MiniLM and no reranker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVA_", "PROMETHEUS_MULTIPROC"))}
    env.update(base)
    env.update(
        {
            "NOVA_DATA_DIR": str(tmp / "data"),
            "NOVA_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
            "NOVA_DATABASE_SCHEMA": schema,
            "NOVA_REDIS_URL": "redis://127.0.0.1:6379/0",
            "NOVA_REDIS_NAMESPACE": f"nova-{schema}",
            "NOVA_RAG_VECTOR_STORE": "edge",
            "NOVA_RAG_EMBED_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
    )
    env.pop("NOVA_RAG_QDRANT_URL", None)
    env.pop("NOVA_RAG_RERANK_MODEL", None)
    env.update(extra)
    return env


def prometheus_config(tmp: Path, targets: dict[str, str]) -> Path:
    """monitoring/prometheus/prometheus.yml with its targets pointed at the local processes and a
    1 s scrape/evaluation interval; jobs with nothing to scrape here are dropped."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str(p) for p in RULE_FILES]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
            jobs.append(job)
    assert {j["job_name"] for j in jobs} == set(targets)
    config["scrape_configs"] = jobs
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def drive_traffic(stack: Stack) -> None:
    """What a day of use does to the gateway and the rag service, in miniature."""
    fake = stack.fake
    assert fake is not None
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    chat = {"model": "smollm2", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as gw:
        for _ in range(3):
            assert gw.post("/v1/chat/completions", json=chat, headers=auth).status_code == 200
            with gw.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}, headers=auth) as r:
                assert r.status_code == 200
                r.read()
        assert (
            gw.post("/v1/chat/completions", json={**chat, "model": "nano"}, headers=auth).status_code == 200
        )
        assert (
            gw.post(
                "/v1/completions", json={"model": "smollm2", "prompt": "hi", "max_tokens": 4}, headers=auth
            ).status_code
            == 200
        )
        # Wrong key: an auth failure.
        assert (
            gw.post(
                "/v1/chat/completions", json=chat, headers={"Authorization": "Bearer sk-wrong"}
            ).status_code
            == 401
        )
        # Upstream 500s: retried, then a 502 to the client (upstream errors, retries, 5xx).
        fake.push(*[Behavior(mode="status", status=500) for _ in range(6)])
        assert gw.post("/v1/chat/completions", json=chat, headers=auth).status_code >= 500
        fake.reset()
        # The replica was ejected after those failures: wait for the health checks to restore it.
        deadline = time.monotonic() + 60
        while gw.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "upstream never came back after ejection"
            time.sleep(0.5)
        # A key limited to 2 requests per minute, used 4 times: rate limiting (and usage per key/user).
        for _ in range(4):
            r = gw.post(
                "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {stack.limited_key}"}
            )
            stack.limited_statuses.append(r.status_code)
        # A client that leaves mid-stream.
        fake.push(Behavior(tokens=200, itl=0.05))
        with gw.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}, headers=auth) as r:
            next(r.iter_raw())
        fake.wait_idle(10)
    token = {"Authorization": f"Bearer {stack.rag_token}", "x-nova-tenant": TENANT}
    with httpx.Client(base_url=stack.rag_url, timeout=120, headers=token) as rag:
        assert rag.put("/collections/handbook", json={"description": "deploy test"}).status_code == 200
        text = "Nova relays OpenAI requests to vLLM.\n\nPrometheus scrapes every service.\n" * 5
        r = rag.post(
            "/collections/handbook/documents",
            params={"wait": "true"},
            files={"file": ("handbook.md", text.encode(), "text/markdown")},
        )
        assert r.status_code in (200, 201), r.text
        for mode in ("hybrid", "dense", "sparse"):
            r = rag.post(
                "/search", json={"query": "who scrapes services", "collections": ["handbook"], "mode": mode}
            )
            assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def stack(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("live")
    (tmp / "data").mkdir()
    schema = f"deploy_{uuid.uuid4().hex[:10]}"
    st = Stack(tmp, schema=schema)
    psql(f"CREATE SCHEMA {schema}")
    try:
        st.fake = FakeUpstream("smollm2").start()
        models = yaml.safe_load((DOCKER / "models.cpu.yaml").read_text())
        for spec in models["models"].values():
            for dep in spec["deployments"]:
                dep["base_url"] = st.fake.base_url
        (tmp / "models.yaml").write_text(yaml.safe_dump(models))

        compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
        gw_port, rag_port, prom_port = free_port(), free_port(), free_port()
        st.rag_token = compose_environment("rag", tmp)["NOVA_RAG_SERVICE_TOKEN"]

        # migrate (compose one-shot service) -> rag -> gateway, as depends_on orders them.
        # Gateway-image processes see only the packages that image installs (no rag extra, no numpy).
        image_site = str(gateway_image_site(tmp))
        migrate_env = local_env(
            dockerfile_env("gateway") | compose_environment("migrate", tmp),
            tmp,
            schema,
            PYTHONPATH=image_site,
        )
        migrate = st.start("migrate", compose["migrate"]["command"], migrate_env)
        assert migrate.wait(120) == 0, st.log("migrate")
        # An operator's first steps (docs/DEPLOYMENT.md): a user and a rate-limited API key.
        nova = str(VENV_BIN / "nova")
        made = run([nova, "user", "create", "deployer", "--no-password", "--json"], env=migrate_env, cwd=tmp)
        assert made.returncode == 0, made.stderr
        made = run(
            [nova, "key", "create", "deployer", "--name", "limited", "--rpm", "2", "--json"],
            env=migrate_env,
            cwd=tmp,
        )
        assert made.returncode == 0, made.stderr
        st.limited_key = json.loads(made.stdout.strip().splitlines()[-1])["key"]

        rag_env = local_env(
            dockerfile_env("rag") | compose_environment("rag", tmp),
            tmp,
            schema,
            NOVA_RAG_HOST="127.0.0.1",
            NOVA_RAG_PORT=str(rag_port),
        )
        rag = st.start("rag", compose["rag"]["command"], rag_env)
        st.rag_url = f"http://127.0.0.1:{rag_port}"

        gw_env = local_env(
            dockerfile_env("gateway") | compose_environment("gateway", tmp),
            tmp,
            schema,
            NOVA_HOST="127.0.0.1",
            NOVA_PORT=str(gw_port),
            NOVA_MODELS_FILE=str(tmp / "models.yaml"),
            NOVA_RAG_URL=st.rag_url,
            PYTHONPATH=image_site,
        )
        gateway = st.start("gateway", compose["gateway"]["command"], gw_env)
        st.gateway_url = f"http://127.0.0.1:{gw_port}"
        wait_http(f"{st.gateway_url}/health/live", gateway, "gateway")
        wait_http(f"{st.rag_url}/healthz", rag, "rag service", timeout=240)

        config = prometheus_config(
            tmp,
            {
                "gateway": f"127.0.0.1:{gw_port}",
                "rag": f"127.0.0.1:{rag_port}",
                "vllm": st.fake.base_url.removeprefix("http://").removesuffix("/v1"),
                "prometheus": f"127.0.0.1:{prom_port}",
            },
        )
        prom = st.start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            {**os.environ},
        )
        st.prom_url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{st.prom_url}/-/ready", prom, "prometheus", timeout=60)

        drive_traffic(st)
        # Enough 1 s scrapes after the traffic for rate() and increase() to see it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            up = query(st, 'sum(up{job=~"gateway|rag|vllm"})')
            seen = query(st, "sum(nova_requests_total)")
            if up and float(up[0]["value"][1]) == 3 and seen and float(seen[0]["value"][1]) >= 8:
                break
            time.sleep(0.5)
        time.sleep(4)
        yield st
    except BaseException:
        for name in ("migrate", "rag", "gateway", "prometheus"):
            print(f"----- {name} log -----\n{st.log(name)}")
        raise
    finally:
        st.stop()
        psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{stack.prom_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr!r}: {body.get('error', body)}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def substitute(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARS.get(m.group(1), m.group(0)), expr)


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) for every panel target and template variable."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if "rawSql" in target:
                    continue
                out.append((path.stem, f"{panel['title']} [{target['refId']}]", substitute(target["expr"])))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
                assert m, f"{path.stem}: unsupported variable query {q}"
                out.append((path.stem, f"variable {var['name']}", f"group by ({m.group(2)}) ({m.group(1)})"))
    return out


def sql_panels() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            out.extend(
                (f"{path.stem}:{panel['title']}", t["rawSql"])
                for t in panel.get("targets", [])
                if "rawSql" in t
            )
    return out


def grafana_sql(sql: str) -> str:
    """Expand the Grafana Postgres macros the panels use, as Grafana does for a 1-day range."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        r"\1 BETWEEN now() - interval '1 day' AND now() + interval '1 minute'",
        sql,
    )
    sql = re.sub(
        r"\$__timeGroupAlias\(([^,]+),\s*'(\d+)m'\)",
        lambda m: (
            f'floor(extract(epoch from {m.group(1)})/{int(m.group(2)) * 60})*{int(m.group(2)) * 60} AS "time"'
        ),
        sql,
    )
    assert "$__" not in sql, f"unexpanded Grafana macro in {sql}"
    return sql


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule["record"], rule["expr"]))
    scaled = yaml.safe_load((K8S / "components" / "keda-vllm" / "scaledobject.yaml").read_text())
    for trigger in scaled["spec"]["triggers"]:
        out.append(("KEDA vllm trigger", trigger["metadata"]["query"]))
    return out


def nova_names(expr: str) -> set[str]:
    return set(re.findall(r"\bnova_[a-z0-9_]+", expr))


DASHBOARD_EXPRS = dashboard_exprs()
RULE_EXPRS = rule_exprs()
SQL_PANELS = sql_panels()


@pytest.mark.parametrize("title,sql", SQL_PANELS, ids=[t for t, _ in SQL_PANELS])
def test_usage_sql_panel(stack: Stack, title: str, sql: str) -> None:
    """Runs against the schema `nova migrate` built, after the traffic: valid SQL and not empty."""
    search_path = {**os.environ, "PGOPTIONS": f"-c search_path={stack.schema}"}
    proc = run([*PSQL, "-At", "-c", grafana_sql(sql)], env=search_path)
    assert proc.returncode == 0, f"{title}: {proc.stderr}"
    assert proc.stdout.strip(), f"{title}: no usage rows after traffic (is the usage writer wired?)"


def test_targets_are_scraped(stack: Stack) -> None:
    health = {r["metric"]["job"]: r["value"][1] for r in query(stack, "up")}
    assert health == {"gateway": "1", "rag": "1", "vllm": "1", "prometheus": "1"}, health
    assert query(stack, 'vllm:num_requests_running{job="vllm"}'), "the vllm job exports vllm:* metrics"


@pytest.mark.parametrize("board,title,expr", DASHBOARD_EXPRS, ids=[f"{b}:{t}" for b, t, _ in DASHBOARD_EXPRS])
def test_dashboard_expression(stack: Stack, board: str, title: str, expr: str) -> None:
    result = query(stack, expr)  # parses and evaluates
    for name in nova_names(expr):
        assert query(stack, f'count({{__name__="{name}"}})'), f"{board}/{title}: no {name} series was scraped"
    if nova_names(expr) and board != "llm-serving":
        assert result, f"{board}/{title}: the panel would show 'No data' after real traffic: {expr}"


@pytest.mark.parametrize("name,expr", RULE_EXPRS, ids=[n for n, _ in RULE_EXPRS])
def test_rule_expression(stack: Stack, name: str, expr: str) -> None:
    query(stack, expr)
    for metric in nova_names(expr):
        assert query(stack, f'count({{__name__="{metric}"}})'), f"{name}: no {metric} series was scraped"


def test_prometheus_loaded_the_alert_rules(stack: Stack) -> None:
    r = httpx.get(f"{stack.prom_url}/api/v1/rules", timeout=10).json()
    loaded = {rule["name"] for g in r["data"]["groups"] for rule in g["rules"]}
    assert {n for n, _ in RULE_EXPRS if n != "KEDA vllm trigger"} <= loaded
    assert all(rule["health"] == "ok" for g in r["data"]["groups"] for rule in g["rules"]), r["data"]


def test_upstream_errors_are_visible(stack: Stack) -> None:
    """The traffic's failure cases show up under the labels the dashboards group by."""
    statuses = {r["metric"]["status"] for r in query(stack, "sum by (status) (nova_requests_total)")}
    assert "200" in statuses and any(s.startswith("5") for s in statuses), statuses
    assert query(stack, "nova_auth_failures_total > 0"), "the wrong key was not counted"
    assert query(stack, "sum by (upstream, kind) (nova_upstream_errors_total) > 0")
    assert query(stack, 'sum by (kind) (nova_tokens_total{kind="completion"}) > 0')
    assert {
        r["metric"]["mode"] for r in query(stack, "sum by (mode) (nova_rag_search_duration_seconds_count)")
    } >= {"hybrid", "dense", "sparse"}


def test_rate_limits_apply(stack: Stack) -> None:
    assert stack.limited_statuses[:2] == [200, 200], stack.limited_statuses
    assert 429 in stack.limited_statuses[2:], stack.limited_statuses
    assert query(stack, "sum by (scope) (nova_rate_limited_total) > 0")


def test_gateway_command_is_the_image_command() -> None:
    """The processes above ran exactly what the images and compose run."""
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
    assert compose["gateway"]["command"] == Dockerfile.parse(DOCKER / "gateway" / "Dockerfile").exec_form(
        "CMD"
    )
    assert compose["rag"]["command"] == Dockerfile.parse(DOCKER / "rag" / "Dockerfile").exec_form("CMD")


def test_gateway_processes_saw_only_the_gateway_image_packages(tmp_path: Path) -> None:
    """The import blocker the gateway ran under really hides the rag extra, and keeps what the image has."""
    env = {**os.environ, "PYTHONPATH": str(gateway_image_site(tmp_path))}
    probe = "import importlib, sys; importlib.import_module(sys.argv[1])"
    for module in ("torch", "numpy", "sentence_transformers", "qdrant_client", "pytest"):
        assert run([str(VENV_BIN / "python"), "-c", probe, module], env=env).returncode != 0, module
    for module in ("nova.main", "uvicorn", "asyncpg", "greenlet", "uvloop"):
        proc = run([str(VENV_BIN / "python"), "-c", probe, module], env=env)
        assert proc.returncode == 0, f"{module}: {proc.stderr}"
