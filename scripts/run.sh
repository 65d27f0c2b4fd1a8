#!/usr/bin/env bash
# `make run`: the embedded default. Installs the vLLM CPU server (own venv), prepares SmolLM2 once, starts
# vLLM in the background, then the gateway (API + UI) in the foreground on one port. Ctrl-C stops both.
#
# Env: NOVA_PORT (8080), VLLM_PORT (8000), NOVA_DATA_DIR (data), VLLM_VENV (.venv-vllm),
#      VLLM_START_TIMEOUT seconds (900), NOVA_MODELS_FILE / NOVA_ADMIN_API_KEY to use your own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
export VLLM_VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
DATA_DIR="$(mkdir -p "${NOVA_DATA_DIR:-data}" && cd "${NOVA_DATA_DIR:-data}" && pwd)"
NOVA_PORT="${NOVA_PORT:-8080}"
VLLM_PORT="${VLLM_PORT:-8000}"
VLLM_START_TIMEOUT="${VLLM_START_TIMEOUT:-900}"
SERVED_NAME=smollm2
LOG_DIR="$DATA_DIR/logs"
mkdir -p "$LOG_DIR"

say() { printf '[nova] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# 0 when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# 0 when GET $1 answers 2xx (python, not curl: a minimal machine may lack curl).
http_ok() {
  "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$1" 2>/dev/null
}

# The bootstrap admin key: created once (random, 0600), reused afterwards. The identity system replaces it.
bootstrap_admin_key() {
  local file="$DATA_DIR/admin_api_key"
  if [[ -n "${NOVA_ADMIN_API_KEY:-}" ]]; then
    printf '%s' "$NOVA_ADMIN_API_KEY"
    return
  fi
  if [[ ! -s "$file" ]]; then
    (umask 077 && "$VENV/bin/python" -c 'import secrets; print("sk-nova-" + secrets.token_urlsafe(32))' >"$file")
  fi
  chmod 600 "$file"
  tr -d '\n' <"$file"
}

write_models_file() {
  local file="$DATA_DIR/models.yaml"
  cat >"$file" <<EOF
# Written by scripts/run.sh on every start (set NOVA_MODELS_FILE to use your own file instead).
models:
  $SERVED_NAME:
    context_window: 2048
    routing: {policy: prefix}
    deployments:
      - base_url: http://127.0.0.1:$VLLM_PORT/v1
        model: $SERVED_NAME
        max_concurrency: 64
aliases: {nano: $SERVED_NAME}
EOF
  printf '%s' "$file"
}

[[ -x "$VENV/bin/nova" ]] || die "$VENV/bin/nova not found: run 'make run' (it installs the gateway first)"
port_open "$VLLM_PORT" && die "port $VLLM_PORT is in use (an old vLLM?): stop it or set VLLM_PORT"
port_open "$NOVA_PORT" && die "port $NOVA_PORT is in use: stop that process or set NOVA_PORT"

model-serving/cpu/install.sh
MODEL_DIR="$("$VLLM_VENV/bin/python" model-serving/cpu/prepare_model.py --data-dir "$DATA_DIR")"

VLLM_PID=""
GATEWAY_PID=""
stop_all() {
  trap - EXIT INT TERM
  if [[ -n "$GATEWAY_PID" ]] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
    kill -TERM "$GATEWAY_PID" 2>/dev/null || true
    wait "$GATEWAY_PID" 2>/dev/null || true
  fi
  if [[ -n "$VLLM_PID" ]] && kill -0 "$VLLM_PID" 2>/dev/null; then
    say "stopping vLLM (pid $VLLM_PID)"
    kill -TERM -- "-$VLLM_PID" 2>/dev/null || true  # its own process group: API server + engine core
    for _ in $(seq 60); do kill -0 "$VLLM_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$VLLM_PID" 2>/dev/null || true
  fi
  rm -f "$DATA_DIR/vllm.pid"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say "starting vLLM CPU ($SERVED_NAME) on 127.0.0.1:$VLLM_PORT, log: $LOG_DIR/vllm.log"
SERVE_MODEL="$MODEL_DIR" SERVE_NAME="$SERVED_NAME" SERVE_HOST=127.0.0.1 SERVE_PORT="$VLLM_PORT" \
  setsid model-serving/serve.sh cpu >>"$LOG_DIR/vllm.log" 2>&1 &
VLLM_PID=$!
echo "$VLLM_PID" >"$DATA_DIR/vllm.pid"

start=$SECONDS
until http_ok "http://127.0.0.1:$VLLM_PORT/health"; do
  if ! kill -0 "$VLLM_PID" 2>/dev/null; then
    tail -n 30 "$LOG_DIR/vllm.log" >&2
    die "vLLM exited during start-up (full log: $LOG_DIR/vllm.log)"
  fi
  if (( SECONDS - start > VLLM_START_TIMEOUT )); then
    tail -n 30 "$LOG_DIR/vllm.log" >&2
    die "vLLM not healthy after ${VLLM_START_TIMEOUT}s (raise VLLM_START_TIMEOUT; log: $LOG_DIR/vllm.log)"
  fi
  sleep 1
done
say "vLLM ready in $(( SECONDS - start ))s"

ADMIN_KEY="$(bootstrap_admin_key)"
KEY_SOURCE="stored in $DATA_DIR/admin_api_key"
[[ -z "${NOVA_ADMIN_API_KEY:-}" ]] || KEY_SOURCE="from NOVA_ADMIN_API_KEY"
MODELS_FILE="${NOVA_MODELS_FILE:-$(write_models_file)}"
STATIC_DIR="$ROOT/frontend/dist"
if [[ -f "$STATIC_DIR/index.html" ]]; then
  export NOVA_STATIC_DIR="$STATIC_DIR"
else
  unset NOVA_STATIC_DIR
  say "frontend/dist not built: serving the API only"
fi

NOVA_MODELS_FILE="$MODELS_FILE" NOVA_ADMIN_API_KEY="$ADMIN_KEY" NOVA_DATA_DIR="$DATA_DIR" \
  NOVA_PORT="$NOVA_PORT" "$VENV/bin/nova" serve &
GATEWAY_PID=$!
for _ in $(seq 120); do
  http_ok "http://127.0.0.1:$NOVA_PORT/health/live" && break
  kill -0 "$GATEWAY_PID" 2>/dev/null || die "the gateway exited during start-up (see its log above)"
  sleep 0.5
done
http_ok "http://127.0.0.1:$NOVA_PORT/health/live" || die "the gateway did not answer on port $NOVA_PORT"

cat >&2 <<EOF

  Nova is running: http://127.0.0.1:$NOVA_PORT/   (API: http://127.0.0.1:$NOVA_PORT/v1)
  Admin API key:   $ADMIN_KEY   ($KEY_SOURCE)
  Models:          $SERVED_NAME (alias nano)
  Try: curl http://127.0.0.1:$NOVA_PORT/v1/chat/completions -H "Authorization: Bearer $ADMIN_KEY" \\
         -H 'content-type: application/json' -d '{"model":"nano","messages":[{"role":"user","content":"Hi"}]}'
  Ctrl-C stops the gateway and vLLM.

EOF
set +e
wait "$GATEWAY_PID"
status=$?
GATEWAY_PID=""
exit "$status"
