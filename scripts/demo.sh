#!/usr/bin/env bash
# The CPU-only demo, one command: install (scripts/bootstrap.sh), generate two tiny GGUF models, start
# `xgen-declare run manifests/demo` (llama-server chat + llama-cpp-python embeddings), wait until both
# are Ready, then ask each a question with curl at the endpoint `status` reports.
#
# It keeps serving until Ctrl-C, which stops the daemon and both models (--stop-on-exit).
# DEMO_EXIT=1 scripts/demo.sh stops everything right after the curls (used by CI-like checks).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

X=.venv/bin/xgen-declare
PY=.venv/bin/python
export XGEN_STATE_DIR="${XGEN_STATE_DIR:-$PWD/.demo-state}"
mkdir -p manifests/demo/models "$XGEN_STATE_DIR"
[ -f manifests/demo/models/tiny-chat.gguf ] || $PY -m xgen_declare.tools.tinygguf manifests/demo/models/tiny-chat.gguf
[ -f manifests/demo/models/tiny-embed.gguf ] || $PY -m xgen_declare.tools.tinygguf manifests/demo/models/tiny-embed.gguf --embedding

$X validate manifests/demo
echo "+ xgen-declare run manifests/demo --stop-on-exit   (log: $XGEN_STATE_DIR/daemon.log)"
$X run manifests/demo --stop-on-exit >"$XGEN_STATE_DIR/daemon.log" 2>&1 &
daemon=$!
stop() { kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; }
trap 'echo; echo "stopping"; stop; exit 0' INT TERM

echo -n "waiting for demo-chat and demo-embed to be Ready"
for _ in $(seq 1 240); do
  if ! kill -0 "$daemon" 2>/dev/null; then echo; echo "daemon exited:"; tail -20 "$XGEN_STATE_DIR/daemon.log"; exit 1; fi
  ready=$($X status -o json 2>/dev/null | $PY -c 'import json,sys; s=json.load(sys.stdin); print(sum(m["state"]=="Ready" for m in s))' || echo 0)
  [ "$ready" = 2 ] && break
  echo -n .; sleep 0.5
done
echo
$X status
endpoint() { $X status -o json | $PY -c "import json,sys; print(next(m['endpoint'] for m in json.load(sys.stdin) if m['name']=='$1'))"; }
CHAT=$(endpoint demo-chat)
EMBED=$(endpoint demo-embed)

echo "+ curl $CHAT/chat/completions"
curl -sS "$CHAT/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "demo-chat", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16}'
echo
echo "+ curl $EMBED/embeddings"
curl -sS "$EMBED/embeddings" -H 'Content-Type: application/json' -d '{"model": "demo-embed", "input": "Hello!"}' \
  | $PY -c 'import json,sys; r=json.load(sys.stdin); v=r["data"][0]["embedding"]; print(f"embedding: {len(v)} floats, first 4: {[round(x, 4) for x in v[:4]]}")'
echo
echo "(the models are random-weight: the text is noise, the protocol is real)"
if [ "${DEMO_EXIT:-0}" = 1 ]; then stop; exit 0; fi
echo "Serving. Try: $X status | $X logs demo-chat | edit manifests/demo/*.yaml and watch it converge. Ctrl-C stops."
wait "$daemon"
