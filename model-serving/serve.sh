#!/usr/bin/env bash
# Start a vLLM OpenAI-compatible server for a profile (cpu | gpu). The same script serves the embedded
# default (`make run`, e2e tests) and GPU boxes, so what is tested is what is deployed.
#
#   model-serving/serve.sh cpu [extra vLLM flags...]
#
# Settings: <profile>/config.env (SERVE_MODEL, SERVE_NAME, SERVE_HOST, SERVE_PORT and process env such
# as VLLM_CPU_KVCACHE_SPACE); a variable already in the environment wins. Engine flags: <profile>/vllm.yaml
# (`--config`); extra command-line flags win over it. The python is $VLLM_PYTHON, else $VLLM_VENV/bin/python
# (default .venv-vllm), else python3 (e.g. inside the vllm/vllm-openai image).
# The server is exec'd, so the caller's pid is the server's pid.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PROFILE="${1:-${SERVE_PROFILE:-cpu}}"
[[ $# -gt 0 ]] && shift
PROFILE_DIR="$HERE/$PROFILE"
if [[ ! -f "$PROFILE_DIR/config.env" || ! -f "$PROFILE_DIR/vllm.yaml" ]]; then
  echo "serve.sh: unknown profile '$PROFILE' (need $PROFILE_DIR/config.env and vllm.yaml)" >&2
  exit 2
fi

while IFS= read -r line || [[ -n "$line" ]]; do
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  if [[ ! "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
    echo "serve.sh: bad line in $PROFILE_DIR/config.env: $line" >&2
    exit 2
  fi
  key="${BASH_REMATCH[1]}"
  value="${BASH_REMATCH[2]}"
  if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
  [[ -n "${!key+set}" ]] || export "$key=$value"
done <"$PROFILE_DIR/config.env"

for var in SERVE_MODEL SERVE_NAME SERVE_HOST SERVE_PORT; do
  [[ -n "${!var:-}" ]] || { echo "serve.sh: $var is not set" >&2; exit 2; }
done
[[ "$SERVE_MODEL" == /* || ! -e "$ROOT/$SERVE_MODEL" ]] || SERVE_MODEL="$ROOT/$SERVE_MODEL"

if [[ -n "${VLLM_PYTHON:-}" ]]; then
  PY="$VLLM_PYTHON"
elif [[ -x "${VLLM_VENV:-$ROOT/.venv-vllm}/bin/python" ]]; then
  PY="${VLLM_VENV:-$ROOT/.venv-vllm}/bin/python"
else
  PY=python3
fi

exec "$PY" -m vllm.entrypoints.openai.api_server \
  --config "$PROFILE_DIR/vllm.yaml" \
  --model "$SERVE_MODEL" \
  --served-model-name "$SERVE_NAME" \
  --host "$SERVE_HOST" \
  --port "$SERVE_PORT" \
  "$@"
