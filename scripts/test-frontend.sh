#!/usr/bin/env bash
# All frontend tests: formatting + type check, Vitest unit tests, then the Playwright end-to-end test in
# headless Debian Chromium (installed with apt when missing; never downloaded by Playwright).
# The gateway e2e (UI on the real `nova serve` + fake vLLM upstream) runs when the venv exists.
# SKIP_E2E=1 runs only the unit tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build-frontend.sh"
cd "$root/frontend"
# dist may be current while node_modules is gone or stale: the tests need the toolchain.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent lint
npm test --silent

[[ "${SKIP_E2E:-0}" == 1 ]] && exit 0
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "test-frontend: installing chromium with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  else
    echo "test-frontend: $chromium missing; install Debian's chromium (apt-get install chromium)" >&2
    exit 1
  fi
fi
CHROMIUM_PATH="$chromium" npm run --silent test:e2e
venv="${NOVA_VENV:-$root/${VENV:-.venv}}"
if [[ -x "$venv/bin/nova" ]]; then
  CHROMIUM_PATH="$chromium" NOVA_VENV="$venv" npm run --silent test:gateway
else
  echo "test-frontend: $venv/bin/nova missing (make install); skipping the gateway e2e" >&2
fi
