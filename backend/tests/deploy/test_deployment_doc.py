"""docs/DEPLOYMENT.md names real files, and the commands it shows exist."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import REPO, VENV_BIN, run

DOC = REPO / "docs" / "DEPLOYMENT.md"
# Files the operator creates from the shipped examples; they hold secrets and must stay out of git.
OPERATOR_FILES = {"infra/docker/.env", "infra/k8s/base/secrets.env"}
TOP = ("infra/", "monitoring/", "model-serving/", "backend/", "scripts/", "docs/", "frontend/")


def test_every_path_in_the_guide_exists() -> None:
    text = DOC.read_text()
    pattern = r"(?<![\w/$.-])((?:" + "|".join(TOP) + r")[\w./*<>-]*)"
    paths = {p.rstrip(".,:;") for p in re.findall(pattern, text)}
    assert len(paths) > 15
    missing = []
    for p in sorted(paths):
        if "<" in p or p in OPERATOR_FILES:
            continue
        if not (list(REPO.glob(p)) if "*" in p else (REPO / p).exists()):
            missing.append(p)
    assert not missing, f"DEPLOYMENT.md mentions missing paths: {missing}"


def test_nova_commands_in_the_guide_parse() -> None:
    """Every `nova user|key ...` line of the guide is accepted by the CLI's argument parser."""
    commands = re.findall(r"nova ((?:user|key) create [^\n`<]+)", DOC.read_text())
    assert len(commands) >= 3
    argvs = [[a for a in command.split() if not a.startswith("$")] for command in commands]
    check = (
        "import json, sys\n"
        "from nova.cli import build_parser\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    build_parser().parse_args(argv)\n"
    )
    proc = run([str(VENV_BIN / "python"), "-c", check, json.dumps(argvs)])
    assert proc.returncode == 0, f"{commands}: {proc.stderr}"


def test_operator_secret_files_are_git_ignored() -> None:
    proc = run(["git", "-C", str(REPO), "check-ignore", *sorted(OPERATOR_FILES)])
    assert proc.returncode == 0 and set(proc.stdout.split()) == OPERATOR_FILES, proc.stdout + proc.stderr
