#!/usr/bin/env bash
# Everything `make test` runs: lint, types, then the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
scripts/install-validators.sh   # promtool, prometheus, nginx, schema packages for the deploy tests
"$VENV/bin/ruff" check backend
"$VENV/bin/ruff" format --check backend
(cd backend && "../$VENV/bin/mypy" nova)
scripts/test-frontend.sh        # prettier + tsc, vitest, Playwright on Debian chromium (UI and real gateway)
cd backend
exec "../$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
