"""#21 finding 14: a forged record (pid + start ticks + boot id of an unrelated process, all public in
/proc) never makes the daemon adopt or signal that process: adoption also needs the owner marker the
record names in the process's own environment. The victim is a real `sleep` process group."""

from __future__ import annotations

import signal
import subprocess

import pytest

from xgen_declare.config import Reconciler
from xgen_declare.processes import pids
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import OWNER_ENV, Record, StateStore
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.states import State
from xgen_declare.testing.fakes import FakeClock, FakeProber


@pytest.fixture
def victim():
    """An unrelated process group: `sleep`, in its own session, without any owner marker."""
    p = subprocess.Popen(["sleep", "60"], start_new_session=True, env={"PATH": "/usr/bin:/bin"})
    yield p
    try:
        p.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=10)


def forge(store: StateStore, pid: int, marker: str) -> None:
    ident = pids.identify(pid)
    assert ident is not None
    store.save(Record(name="a", state=State.READY.value, backend="llama-server-cpu", pid=pid,
                      start_ticks=ident.start_ticks, boot_id=ident.boot_id, marker=marker, port=29441,
                      stop_grace=0.2))


@pytest.mark.parametrize("marker", ["{owner}/a/deadbeef", None, "someone-else/a/1"])
def test_a_forged_record_never_signals_an_unrelated_process_group(tmp_path, victim, marker):
    store = StateStore(tmp_path / "state")
    forge(store, victim.pid, marker and marker.format(owner=store.owner_id()))
    clock = FakeClock()
    sup = Supervisor(store, Reconciler(), clock=clock, prober=FakeProber(), provenance=lambda f: Provenance())
    try:
        sup.load()
        p = sup.procs["a"]
        adopted_pid, error = p.rec.pid, p.rec.last_error
        sup.stop("a", "manifest removed", forget=True)  # what the daemon does with a record no manifest declares
        for _ in range(5):
            clock.advance(1.0)
            sup.tick()
        assert victim.poll() is None and pids.group_alive(victim.pid)  # never signalled
        assert adopted_pid is None
        shown = marker.format(owner=store.owner_id()) if marker else "none recorded"
        assert error == (
            f"pid {victim.pid} of the record is alive but does not carry the record's owner marker "
            f"({OWNER_ENV}={shown}) in its environment: not adopted and never signalled (a forged or foreign "
            "record; the model is started again)")
    finally:
        sup.close()


def test_a_process_carrying_the_marker_is_still_adopted(tmp_path):
    store = StateStore(tmp_path / "state")
    marker = f"{store.owner_id()}/a/cafe"
    ours = subprocess.Popen(["sleep", "60"], start_new_session=True, env={"PATH": "/usr/bin:/bin", OWNER_ENV: marker})
    try:
        forge(store, ours.pid, marker)
        sup = Supervisor(store, Reconciler(), clock=FakeClock(), prober=FakeProber(),
                         provenance=lambda f: Provenance())
        sup.load()
        assert sup.procs["a"].rec.pid == ours.pid and sup.running(sup.procs["a"])
        sup.close()
    finally:
        ours.kill()
        ours.wait(timeout=10)
