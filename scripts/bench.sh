#!/usr/bin/env bash
# Gateway-overhead benchmark (../shared/bench/gateway): mock vLLM upstream + load generator on
# CPU 0, the gateway alone on CPU 1, in its production configuration (auth, metrics, JSON logs,
# the rag service reached over HTTP as in compose; the relay path never calls it).
# Usage: scripts/bench.sh [extra run.py args, e.g. --scenarios S1,S3 --s3-streams 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
BENCH=${NOVA_BENCH_DIR:-$ROOT/../shared/bench/gateway}
OUT=${NOVA_BENCH_OUT:-$ROOT/data/bench}
UP_PORT=${UP_PORT:-18001}
GW_PORT=${GW_PORT:-18080}
mkdir -p "$OUT"
[ -f "$BENCH/run.py" ] || { echo "benchmark harness not found at $BENCH" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }

# Production configuration: prod secrets, Redis-backed exact rate limits, a real API key with
# (generous) rpm/tpm/concurrency limits, usage accounting to the database, metrics, JSON logs.
rm -f "$OUT"/nova.db* "$OUT"/usage-spool*.jsonl
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export NOVA_ENV=prod NOVA_DATA_DIR="$OUT" NOVA_SECRET_KEY="$(rand)" NOVA_JWT_SECRET="$(rand)"
export NOVA_REDIS_URL=${NOVA_REDIS_URL:-redis://127.0.0.1:6379/0} NOVA_REDIS_NAMESPACE="nova-bench-$$"
export NOVA_MODELS_FILE="$OUT/models.yaml" NOVA_RAG_URL="${NOVA_RAG_URL:-http://127.0.0.1:18090}"
"$VENV/bin/nova" migrate >/dev/null
"$VENV/bin/nova" user create bench --no-password >/dev/null
KEY=$("$VENV/bin/nova" key create bench --name bench --rpm 100000000 --tpm 100000000000 --concurrency 100000 --json \
  | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["key"])')
cat > "$OUT/models.yaml" <<YAML
models:
  mock-model:
    routing: {policy: least_outstanding}
    deployments:
      - {base_url: "http://127.0.0.1:$UP_PORT/v1", max_concurrency: 4096}
YAML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c 0 "$VENV/bin/python" "$BENCH/mock_upstream.py" --port "$UP_PORT" >"$OUT/upstream.log" 2>&1 &
pids+=($!)
NOVA_PORT=$GW_PORT NOVA_HEALTH_INTERVAL=5 taskset -c 1 "$VENV/bin/nova" serve >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
pids+=($GW_PID)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$GW_PORT/health/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$GW_PORT/health/ready" >/dev/null || { echo "gateway not ready"; tail -20 "$OUT/gateway.log"; exit 1; }

"$VENV/bin/python" "$BENCH/run.py" --pin-loadgen 0 \
  --gateway-url "http://127.0.0.1:$GW_PORT" --gateway-key "$KEY" --gateway-model mock-model \
  --gateway-label "nova $(git rev-parse --short HEAD 2>/dev/null || echo dev)" --gateway-pids "$GW_PID" \
  --upstream-url "http://127.0.0.1:$UP_PORT" --out "$OUT/bench.json" --md-out "$OUT/bench.md" "$@"
