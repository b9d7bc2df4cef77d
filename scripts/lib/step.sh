# shellcheck shell=bash
# One long step of an install script, told as it goes (sourced by scripts/bootstrap.sh, demo.sh,
# install-vllm.sh, build-rpc.sh):
#
#   step NAME "what it does" "how long it usually takes" COMMAND [ARG...]
#
# prints "==> what it does (usually ...)", runs COMMAND with its stdout+stderr going to a log file
# $XGEN_LOG_DIR/SCRIPT-NAME.log (default dir: .logs/ in the repo), prints a heartbeat with the elapsed time every
# $XGEN_HEARTBEAT_S seconds (default 20) together with the build's last progress line (ninja/make's
# [N/M] or [ NN%], pip's "Building wheel for ..."), and "    done in 1m23s" at the end. A failed step
# prints the last $XGEN_LOG_TAIL (40) lines of its log and the log's path, and returns the command's
# exit status. All of it goes to stderr, so a script's stdout stays its result.

XGEN_LOG_DIR=${XGEN_LOG_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.logs}
XGEN_HEARTBEAT_S=${XGEN_HEARTBEAT_S:-20}
XGEN_LOG_TAIL=${XGEN_LOG_TAIL:-40}
STEP_PREFIX=${STEP_PREFIX:-$(basename "$0" .sh)}

fmt_secs() {  # 83 -> 1m23s
  local s=$1
  if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

say() { echo "[$STEP_PREFIX] $*" >&2; }

# The most telling recent line of a build log: a build tool's progress counter, else what pip does.
step_progress() {
  local log=$1 line pkg
  pkg=$(grep -aoE "Building wheel for [A-Za-z0-9_.-]+" "$log" 2>/dev/null | tail -1 | sed 's/Building wheel for //')
  line=$(tail -c 65536 "$log" 2>/dev/null | tr '\r' '\n' | grep -aoE '^\s*\[ *[0-9]+(/[0-9]+|%)\]' | tail -1 | tr -d ' ')
  if [ -n "$line" ]; then
    echo "${pkg:+building $pkg }$line"
  elif [ -n "$pkg" ]; then
    echo "building $pkg"
  else
    tail -c 4096 "$log" 2>/dev/null | tr '\r' '\n' | grep -a -v '^\s*$' | tail -1 | cut -c1-90
  fi
}

step() {
  local name=$1 title=$2 usual=$3
  shift 3
  mkdir -p "$XGEN_LOG_DIR"
  local log="$XGEN_LOG_DIR/$STEP_PREFIX-$name.log"
  say "==> $title (usually $usual)"
  local t0=$SECONDS pid rc=0 next
  next=$((SECONDS + XGEN_HEARTBEAT_S))
  "$@" >"$log" 2>&1 </dev/null &
  pid=$!
  # Ctrl-C while a step runs: stop the step's command too (it runs in the background).
  trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; say "interrupted: $title (log: $log)"; exit 130' INT TERM
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.5
    if [ "$SECONDS" -ge "$next" ] && kill -0 "$pid" 2>/dev/null; then
      say "    ... $(fmt_secs $((SECONDS - t0))) $(step_progress "$log")"
      next=$((next + XGEN_HEARTBEAT_S))
    fi
  done
  wait "$pid" || rc=$?
  trap - INT TERM
  local took
  took=$(fmt_secs $((SECONDS - t0)))
  if [ "$rc" -ne 0 ]; then
    say "FAILED after $took (exit $rc): $title"
    say "---- last $XGEN_LOG_TAIL lines of $log ----"
    tail -n "$XGEN_LOG_TAIL" "$log" >&2
    say "---- full log: $log"
    return "$rc"
  fi
  say "    done in $took"
}
