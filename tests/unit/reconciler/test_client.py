"""The rows `status`, the API, /metrics and doctor show for a record whose process is gone."""

from __future__ import annotations

import os
import subprocess

from xgen_declare.processes import pids
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.reconciler.client import status_rows
from xgen_declare.states import SETTLED_STATES, State


def _gone_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _store_with_dead_model(tmp_path) -> tuple[StateStore, int]:
    store = StateStore(tmp_path / "state")
    pid = _gone_pid()
    store.save(Record(name="m", state=State.STARTING.value, backend="llama-server-cpu", pid=pid,
                      start_ticks=1, boot_id=pids.boot_id(), port=8001, last_error=None))
    return store, pid


def test_gone_process_shows_exited_while_a_daemon_runs(tmp_path):
    """The moment between a process's exit and the daemon recording its own error (CI caught a test waiting
    for Failed/CrashLoopBackOff in it: it stopped waiting on 'process N is gone' instead of the real error)."""
    store, pid = _store_with_dead_model(tmp_path)
    assert store.try_lock()  # this test process plays the daemon
    try:
        ident = pids.identify(os.getpid())
        store.write_daemon_info({"pid": os.getpid(), "start_ticks": ident.start_ticks, "boot_id": ident.boot_id})
        [row] = [r.to_json() for r in status_rows(store)]
    finally:
        store.unlock()
    assert row["state"] == "Exited" and row["pid"] is None
    assert row["last_error"] == f"process {pid} is gone (the daemon has not recorded what followed)"
    assert State(row["state"]) not in SETTLED_STATES  # a script waiting for a settled state waits on


def test_gone_process_shows_failed_without_a_daemon(tmp_path):
    store, pid = _store_with_dead_model(tmp_path)
    [row] = [r.to_json() for r in status_rows(store)]
    assert row["state"] == "Failed" and row["pid"] is None
    assert row["last_error"] == f"process {pid} is gone (no daemon noticed yet)"
