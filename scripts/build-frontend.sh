#!/usr/bin/env bash
# Build the React UI into frontend/dist (served by the gateway at / via NOVA_STATIC_DIR).
# Quick when nothing changed: skips `npm ci` while node_modules matches package-lock.json and the
# build while dist is newer than every source file. Needs only the npm registry (for `npm ci`).
# FORCE=1 rebuilds regardless.
set -euo pipefail
cd "$(dirname "$0")/../frontend"

need_node() {
  command -v node >/dev/null && command -v npm >/dev/null || {
    echo "build-frontend: node and npm are required (Node >= 20.19)" >&2
    exit 1
  }
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
    echo "build-frontend: Node >= 20.19 is required (found $(node --version))" >&2
    exit 1
  }
}

# True when any input of the build is newer than dist/index.html.
sources_changed() {
  [[ -f dist/index.html ]] || return 0
  [[ -n "$(find src public index.html package.json package-lock.json vite.config.ts tsconfig.json \
    -newer dist/index.html -print -quit 2>/dev/null)" ]]
}

if [[ "${FORCE:-0}" != 1 ]] && ! sources_changed; then
  echo "frontend: dist is up to date"
  exit 0
fi

need_node
# npm writes node_modules/.package-lock.json on install; newer than the lockfile = installed.
if [[ "${FORCE:-0}" == 1 || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
# vite keeps source mtimes off dist; stamp index.html so the up-to-date check is exact.
touch dist/index.html
echo "frontend: built $(du -sh dist | cut -f1) into frontend/dist"
