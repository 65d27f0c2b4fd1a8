"""K3s manifests: `kubectl kustomize` per overlay, kubernetes-validate --strict for built-in kinds, the
KEDA CRD schema for ScaledObjects, and the policies the design asks for."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    DOCKER,
    INSTALL_HINT,
    K8S,
    PROM_DIR,
    TOOLS_DIR,
    compose_binary,
    fill_env_example,
    load_yaml_docs,
    run,
    tool,
    typescript_check,
)

K8S_VERSION = "1.34.0"  # K3s stable channel at the time of writing
OVERLAYS = ["gpu", "cpu"]
CRD_KINDS = {"ScaledObject"}
STATEFUL = {"postgres", "redis", "qdrant"}


def k8s_copy(tmp: Path, *, secrets: bool = True) -> Path:
    root = tmp / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("secrets.env", "node_modules"))
    if secrets:
        (root / "base" / "secrets.env").write_text(fill_env_example(K8S / "base" / "secrets.env.example"))
    return root


def kustomize(path: Path) -> Any:
    return run([tool("kubectl"), "kustomize", str(path)])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    root = k8s_copy(tmp_path_factory.mktemp("k8s"))
    out = {}
    for overlay in OVERLAYS:
        proc = kustomize(root / "overlays" / overlay)
        assert proc.returncode == 0, proc.stderr
        out[overlay] = load_yaml_docs(proc.stdout)
    return out


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"{kind}/{name} not rendered")


def validate_builtin(docs: list[dict[str, Any]], tmp: Path) -> Any:
    path = tmp / "builtin.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return run([tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, str(path)])


def validate_keda(docs: list[dict[str, Any]], tmp: Path) -> tuple[Any, Any]:
    """KEDA's CRD schema (types, enums, required) via @kubernetes-models/keda, then unknown fields via
    TypeScript's excess-property check against the same package's declarations."""
    modules = TOOLS_DIR / "node_modules" / "@kubernetes-models" / "keda"
    if not modules.is_dir():
        pytest.fail(f"{modules} missing: {INSTALL_HINT}")
    script = TOOLS_DIR / "validate-keda.mjs"  # next to node_modules so ESM resolution finds the package
    shutil.copyfile(K8S / "schema-check" / "validate-keda.mjs", script)
    data = tmp / "keda.json"
    data.write_text(json.dumps(docs))
    schema = run([tool("node"), str(script), str(data)])
    body = ",\n".join(json.dumps(d, indent=1) for d in docs)
    module = "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject"
    source = f'import type {{ IScaledObject }} from "{module}";\n'
    source += f"export const objects: IScaledObject[] = [\n{body}\n];\n"
    types = typescript_check({"scaledobjects.ts": source})
    return schema, types


def test_kustomize_refuses_to_build_without_secrets(tmp_path: Path) -> None:
    root = k8s_copy(tmp_path, secrets=False)
    proc = kustomize(root / "overlays" / "gpu")
    assert proc.returncode != 0 and "secrets.env" in proc.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_is_valid_kubernetes(
    overlay: str, rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = rendered[overlay]
    builtin = [d for d in docs if d["kind"] not in CRD_KINDS]
    proc = validate_builtin(builtin, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Couldn't find schema" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == len(builtin)
    crds = [d for d in docs if d["kind"] in CRD_KINDS]
    if crds:
        schema, types = validate_keda(crds, tmp_path)
        assert schema.returncode == 0, schema.stdout + schema.stderr
        assert types.returncode == 0, types.stdout + types.stderr


def test_validators_catch_real_mistakes(rendered: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    docs = rendered["gpu"]
    deployment = copy.deepcopy(find(docs, "Deployment", "gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # typo
    assert validate_builtin([deployment], tmp_path).returncode != 0
    hpa = copy.deepcopy(find(docs, "HorizontalPodAutoscaler", "gateway"))
    hpa["spec"]["minReplicas"] = "two"
    assert validate_builtin([hpa], tmp_path).returncode != 0

    scaled = find(docs, "ScaledObject", "vllm")
    typo = copy.deepcopy(scaled)
    typo["spec"]["maxReplicaCounts"] = 4
    assert validate_keda([typo], tmp_path)[1].returncode != 0
    wrong_type = copy.deepcopy(scaled)
    wrong_type["spec"]["triggers"][0]["metadata"]["threshold"] = 5  # KEDA metadata values are strings
    schema, types = validate_keda([wrong_type], tmp_path)
    assert schema.returncode != 0 and types.returncode != 0
    missing = copy.deepcopy(scaled)
    del missing["spec"]["scaleTargetRef"]
    assert validate_keda([missing], tmp_path)[0].returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_have_probes_resources_and_security(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for d in rendered[overlay]:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        for c in pod["containers"] + pod.get("initContainers", []):
            where = f"{d['metadata']['name']}/{c['name']}"
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and c["resources"]["limits"], where
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert "ALL" in c["securityContext"]["capabilities"]["drop"], where
        if d["kind"] != "Job":
            main = pod["containers"][0]
            assert "readinessProbe" in main and "livenessProbe" in main, d["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_scaling_and_stateful_stores(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered[overlay]
    hpa = find(docs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in find(docs, "Deployment", "gateway")["spec"], "the HPA owns gateway replicas"
    pdb = find(docs, "PodDisruptionBudget", "gateway")
    pod_labels = find(docs, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for name in STATEFUL:
        sts = find(docs, "StatefulSet", name)
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        assert find(docs, "Service", name)["spec"]["clusterIP"] == "None"
    for svc in (d for d in docs if d["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        assert any(
            selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
            for w in docs
            if w["kind"] in ("Deployment", "StatefulSet")
        ), svc["metadata"]["name"]


def test_gpu_overlay_schedules_vllm_on_gpus_and_scales_it_on_the_queue(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["gpu"]
    vllm = find(docs, "Deployment", "vllm")
    pod = vllm["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].startswith("nova/vllm-gpu:")
    assert "replicas" not in vllm["spec"], "KEDA owns vLLM replicas"
    assert vllm["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    scaled = find(docs, "ScaledObject", "vllm")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "vllm"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus" and "vllm:num_requests_waiting" in trigger["metadata"]["query"]
    prom = find(docs, "Service", "prometheus")
    assert (
        trigger["metadata"]["serverAddress"]
        == f"http://prometheus.nova.svc.cluster.local:{prom['spec']['ports'][0]['port']}"
    )
    cpu_pod = find(rendered["cpu"], "Deployment", "vllm")["spec"]["template"]["spec"]
    assert "runtimeClassName" not in cpu_pod and not any(d["kind"] == "ScaledObject" for d in rendered["cpu"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_reachable_from_outside(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    docs = rendered[overlay]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    ingress = find(docs, "Ingress", "nova")
    assert ingress["spec"]["tls"][0]["secretName"] and ingress["spec"]["ingressClassName"] == "traefik"
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"gateway", "frontend"}
    api_paths = {
        p["path"]
        for r in ingress["spec"]["rules"]
        for p in r["http"]["paths"]
        if p["backend"]["service"]["name"] == "gateway"
    }
    assert "/v1" in api_paths
    # Policies admitting traffic from outside the namespace: the ingress controller to the gateway
    # (and the static UI), KEDA to Prometheus. Nothing else.
    external = set()
    for pol in policies.values():
        for rule in pol["spec"].get("ingress", []):
            peers = rule.get("from")  # no `from`: any source, inside or outside the cluster
            if not peers or any("namespaceSelector" in peer or "ipBlock" in peer for peer in peers):
                external.add(pol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    assert external == {"gateway", "frontend", "prometheus"}
    for pol in policies.values():  # every workload is covered by a specific policy too
        assert pol["spec"]["podSelector"] == {} or pol["spec"]["podSelector"]["matchLabels"]


def test_k8s_prometheus_config_and_rules(tmp_path: Path) -> None:
    monitoring = K8S / "base" / "monitoring"
    # The ConfigMap copy of the alert rules must be the tested monitoring/ file (kustomize cannot
    # load files outside its root): cp monitoring/prometheus/rules/nova-alerts.yml infra/k8s/base/monitoring/
    assert (monitoring / "nova-alerts.yml").read_text() == (
        PROM_DIR / "rules" / "nova-alerts.yml"
    ).read_text()
    key = tmp_path / "qdrant_api_key"
    key.write_text("test")
    config = tmp_path / "prometheus.yml"
    text = (monitoring / "prometheus.yml").read_text()
    config.write_text(
        text.replace("/etc/prometheus/secrets/qdrant_api_key", str(key)).replace(
            "/etc/prometheus/rules/*.yml", str(monitoring / "nova-alerts.yml")
        )
    )
    proc = run([tool("promtool"), "check", "config", str(config)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = {j["job_name"] for j in yaml.safe_load(text)["scrape_configs"]}
    compose_jobs = {
        j["job_name"] for j in yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert compose_jobs - jobs == {"node"}, "K3s scrapes the same jobs (no node-exporter DaemonSet)"


def container_env_names(docs: list[dict[str, Any]], deployment: str, container: str) -> set[str]:
    """Every variable a K3s container receives: envFrom ConfigMaps/Secrets (their keys) and env."""
    pod = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    c = next(c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == container)
    names = {e["name"] for e in c.get("env", [])}
    for source in c.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        obj = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == ref["name"])
        names |= set(obj.get("data", {}))
    return names


@pytest.mark.parametrize(
    "deployment,container,service,not_needed",
    [
        ("gateway", "gateway", "gateway", {"NOVA_CORS_ORIGINS", "NOVA_WORKERS"}),  # same origin; 1 worker/pod
        ("gateway", "migrate", "migrate", set()),
        ("rag", "rag", "rag", {"NOVA_REDIS_URL"}),  # the rag service keeps no state in Redis
    ],
)
def test_k3s_and_compose_configure_services_alike(
    deployment: str,
    container: str,
    service: str,
    not_needed: set[str],
    rendered: dict[str, list[dict[str, Any]]],
    dockerfiles: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A setting added to one deployment path and forgotten in the other is caught here."""
    env_file = tmp_path / "compose.env"
    env_file.write_text(fill_env_example(DOCKER / ".env.example", overrides={"NOVA_DOMAIN": "nova.test"}))
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
    compose_keys = set(json.loads(proc.stdout)["services"][service]["environment"])
    image = "gateway" if service == "migrate" else service
    image_env = {
        part.partition("=")[0]
        for rest in dockerfiles[image].all("ENV")
        for part in rest.split()
        if "=" in part
    }
    k8s_keys = container_env_names(rendered["gpu"], deployment, container) | image_env
    missing = {
        k for k in compose_keys - k8s_keys - not_needed if k.startswith("NOVA_") or k == "VLLM_API_KEY"
    }
    assert not missing, f"K3s {deployment}/{container} lacks {sorted(missing)} that compose sets"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_config_and_secret_reference_resolves(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """kustomize appends content hashes to generated names; a reference it could not rewrite (a typo,
    an object outside the build) would leave pods stuck in CreateContainerConfigError."""
    docs = rendered[overlay]
    existing = {(d["kind"], d["metadata"]["name"]) for d in docs}
    refs: set[tuple[str, str]] = set()
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = d["spec"]["template"]["spec"]
        for vol in pod.get("volumes", []):
            if "configMap" in vol:
                refs.add(("ConfigMap", vol["configMap"]["name"]))
            if "secret" in vol:
                refs.add(("Secret", vol["secret"]["secretName"]))
            if "persistentVolumeClaim" in vol:
                refs.add(("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]))
        for c in pod["containers"] + pod.get("initContainers", []):
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    refs.add(("ConfigMap", src["configMapRef"]["name"]))
                if "secretRef" in src:
                    refs.add(("Secret", src["secretRef"]["name"]))
            for env in c.get("env", []):
                key_ref = env.get("valueFrom", {}).get("secretKeyRef")
                if key_ref:
                    refs.add(("Secret", key_ref["name"]))
    assert refs and refs <= existing, f"unresolved references: {sorted(refs - existing)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_nova_namespace(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for d in rendered[overlay]:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == "nova", f"{d['kind']}/{d['metadata']['name']}"


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] != "In" or labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_selectors_match_real_pods(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    """A misspelled label in a policy silently protects nothing (or blocks a real flow)."""
    docs = rendered[overlay]
    pods = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    ]
    for pol in (d for d in docs if d["kind"] == "NetworkPolicy"):
        name = pol["metadata"]["name"]
        assert any(selects(pol["spec"]["podSelector"], p) for p in pods), (
            f"{name}: podSelector matches no pod"
        )
        for rule in pol["spec"].get("ingress", []) + pol["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert any(selects(peer["podSelector"], p) for p in pods), (
                        f"{name}: peer {peer} matches no pod"
                    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_named_ports_exist(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Probes and Services that name a port need a container port of that name (else the probe
    fails forever, or the Service has no endpoints)."""
    docs = rendered[overlay]
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    for w in workloads:
        for c in w["spec"]["template"]["spec"]["containers"]:
            names = {p["name"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str):
                    assert port in names, f"{w['metadata']['name']}/{c['name']} {probe}: no port {port!r}"
    for svc in (d for d in docs if d["kind"] == "Service"):
        pods = [
            w
            for w in workloads
            if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        names = {
            p["name"]
            for w in pods
            for c in w["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str):
                assert target in names, f"Service {svc['metadata']['name']}: no container port {target!r}"
