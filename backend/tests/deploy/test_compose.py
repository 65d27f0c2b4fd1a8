"""docker-compose.yml: schema, secrets policy, profiles, healthchecks, and the commands it runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DOCKER, REPO, Dockerfile, compose_binary, fill_env_example, run, tool

COMPOSE_FILE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
# Services that run to completion or have no way to probe themselves (scratch images).
NO_HEALTHCHECK = {
    "migrate",
    "vllm-download",
    "redis-exporter",
    "postgres-exporter",
    "node-exporter",
    "promtail",
    "loki",
}


OPTIONAL_SECRETS = {"HF_TOKEN"}  # only the one-shot model download uses it, for gated repos


def compose_text() -> str:
    """The compose file without comment lines (they quote ${VAR:?...} as documentation)."""
    return "\n".join(
        line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )


def required_vars() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", compose_text()))


def compose_config(tmp_path: Path, env_text: str) -> tuple[int, dict[str, Any] | None, str]:
    env_file = tmp_path / "compose.env"
    env_file.write_text(env_text)
    proc = run(
        [compose_binary(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "--format", "json"]
    )
    return proc.returncode, (json.loads(proc.stdout) if proc.returncode == 0 else None), proc.stderr


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module", params=["gpu", "cpu"])
def resolved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = fill_env_example(
        ENV_EXAMPLE, overrides={"COMPOSE_PROFILES": request.param, "NOVA_DOMAIN": "nova.test"}
    )
    rc, config, err = compose_config(tmp_path_factory.mktemp("compose"), env)
    assert rc == 0, err
    assert config is not None
    config["_profile"] = request.param
    return config


def test_compose_file_matches_the_compose_spec() -> None:
    proc = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_env_lists_every_required_secret_and_no_values() -> None:
    keys = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))
    missing = required_vars() - keys.keys()
    assert not missing, f".env.example lacks {sorted(missing)}"
    secrets = {k: v for k, v in keys.items() if k != "COMPOSE_PROFILES" and v}
    assert not secrets, f".env.example must not ship values: {secrets}"


@pytest.mark.parametrize("var", sorted(required_vars()))
def test_compose_refuses_to_start_without_each_required_variable(var: str, tmp_path: Path) -> None:
    rc, _, err = compose_config(tmp_path, fill_env_example(ENV_EXAMPLE, drop=var))
    assert rc != 0, f"compose accepted a config without {var}"
    assert (var in err and "infra/docker/.env" in err) or var == "COMPOSE_PROFILES", err


def test_no_secret_has_a_default() -> None:
    text = compose_text()
    names = set(re.findall(r"\$\{([A-Z0-9_]*(?:PASSWORD|SECRET|KEY|TOKEN)[A-Z0-9_]*)", text))
    assert {"POSTGRES_PASSWORD", "NOVA_JWT_SECRET", "VLLM_API_KEY"} <= names
    for name in names:
        assert not re.search(r"\$\{" + name + r"(?::?-(?!\})|\})", text), (
            f"{name} is used without :? or has a default"
        )
        if name not in OPTIONAL_SECRETS:
            assert re.search(r"\$\{" + name + r":\?", text), f"{name} must be required (${{{name}:?...}})"


def test_profiles_swap_the_model_server(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    profile = resolved["_profile"]
    expected = {"gpu": "vllm", "cpu": "vllm-cpu"}[profile]
    other = {"gpu": "vllm-cpu", "cpu": "vllm"}[profile]
    assert expected in services and other not in services
    assert "vllm" in services[expected]["networks"]["backend"]["aliases"]
    mounts = {v["target"]: v["source"] for v in services["gateway"]["volumes"]}
    assert mounts["/etc/nova/models.yaml"].endswith(f"models.{profile}.yaml")
    for name in (
        "gateway",
        "rag",
        "qdrant",
        "redis",
        "postgres",
        "prometheus",
        "grafana",
        "traefik",
        "frontend",
    ):
        assert name in services, name


def test_gpu_server_reserves_nvidia_devices(raw: dict[str, Any]) -> None:
    devices = raw["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_healthchecks_and_healthy_dependencies(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, svc in services.items():
        if name not in NO_HEALTHCHECK:
            assert "healthcheck" in svc and svc["healthcheck"].get("test"), f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep == "migrate" else "service_healthy"
            if dep in NO_HEALTHCHECK and dep != "migrate":
                assert cond["condition"] == "service_started", f"{name} -> {dep}: {cond}"
                continue
            assert cond["condition"] == want, f"{name} -> {dep}: {cond}"
    assert services["gateway"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_only_traefik_publishes_ports_and_data_lives_in_named_volumes(resolved: dict[str, Any]) -> None:
    named = set(resolved["volumes"])
    for name, svc in resolved["services"].items():
        if name != "traefik":
            assert not svc.get("ports"), f"{name} publishes ports"
        for vol in svc.get("volumes", []):
            if vol["type"] == "volume":
                assert vol["source"] in named
            else:  # bind mounts are config (read-only) or the Docker socket, never data
                assert vol["type"] == "bind" and vol.get("read_only"), f"{name}: writable bind {vol}"


def test_images_are_pinned(raw: dict[str, Any]) -> None:
    for name, svc in raw["services"].items():
        image = svc["image"]
        if image.startswith("nova/"):
            assert "build" in svc or name == "vllm-download", f"{name} uses a nova image it does not build"
            continue
        assert re.search(r":v?\d+(\.\d+)+", image), f"{name}: image {image} is not pinned to a precise tag"
        assert ":latest" not in image


def test_compose_commands_are_the_dockerfile_commands(
    raw: dict[str, Any], dockerfiles: dict[str, Dockerfile]
) -> None:
    """A built service either inherits the image's CMD/ENTRYPOINT or states the very same one."""
    for name, svc in raw["services"].items():
        build = svc.get("build")
        if not build:
            continue
        df = dockerfiles[Path(build["dockerfile"]).parent.name]
        if "command" in svc and name != "migrate":
            assert svc["command"] == df.exec_form("CMD"), f"{name}: {svc['command']} != Dockerfile CMD"
        if "entrypoint" in svc:
            assert svc["entrypoint"] == df.exec_form("ENTRYPOINT"), name
    assert raw["services"]["vllm"]["entrypoint"] == dockerfiles["vllm-gpu"].exec_form("ENTRYPOINT")
    assert raw["services"]["migrate"]["command"] == ["nova", "migrate"]
    assert raw["services"]["migrate"]["image"] == raw["services"]["gateway"]["image"]


def test_every_dockerfile_is_built_by_compose(
    raw: dict[str, Any], dockerfiles: dict[str, Dockerfile]
) -> None:
    built = {Path(s["build"]["dockerfile"]).parent.name for s in raw["services"].values() if "build" in s}
    assert built == set(dockerfiles), f"Dockerfiles not in compose: {set(dockerfiles) - built}"
    for svc in raw["services"].values():
        if "build" in svc:
            assert (
                (REPO / "infra/docker" / svc["build"]["context"] / svc["build"]["dockerfile"])
                .resolve()
                .is_file()
            )


def test_nova_services_are_hardened(resolved: dict[str, Any]) -> None:
    for name in ("gateway", "rag", "frontend", "migrate"):
        svc = resolved["services"][name]
        assert svc.get("read_only") is True, f"{name}: root filesystem must be read-only"
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name


def test_prometheus_targets_are_compose_services(resolved: dict[str, Any]) -> None:
    """Every static scrape target names a service (or network alias) Prometheus shares a network with,
    on the port that service listens on."""
    services = resolved["services"]
    prom_nets = set(services["prometheus"]["networks"])
    config = yaml.safe_load((REPO / "monitoring" / "prometheus" / "prometheus.yml").read_text())
    listen = {
        "gateway": services["gateway"]["environment"]["NOVA_PORT"],
        "rag": services["rag"]["environment"]["NOVA_RAG_PORT"],
    }
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.rsplit(":", 1)
            if host == "localhost":
                continue
            names = {
                name: set(svc["networks"])
                for name, svc in services.items()
                if name == host or any(host in (n or {}).get("aliases", []) for n in svc["networks"].values())
            }
            assert names, f"job {job['job_name']}: no service {host}"
            assert all(nets & prom_nets for nets in names.values()), f"{host} not on Prometheus' network"
            if host in listen:
                assert port == str(listen[host]), f"{host} listens on {listen[host]}, scraped on {port}"
