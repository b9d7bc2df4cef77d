#!/usr/bin/env bash
# Install the LiteLLM proxy that bench/vs_litellm.py compares our router with, into a venv of its own
# (default .venv-litellm): pyproject extra "bench-litellm". Its pins stay out of the tested .venv.
# About 1-4 minutes on 2 cores the first time (~700 MB), seconds from pip's cache.
# Usage: scripts/install-litellm.sh            # VENV=.venv-litellm
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-litellm}
PY=${PYTHON:-python3}
t0=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip wheel setuptools
fi
"$VENV/bin/python" -m pip install --quiet --progress-bar off -e '.[bench-litellm]'
# the cost map from the package, never fetched from the network
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False "$VENV/bin/litellm" --version >/dev/null
echo "install-litellm: installed litellm[proxy] into $VENV in $(( $(date +%s) - t0 )) s"
