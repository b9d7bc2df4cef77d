"""The Supervisor's state machine through its seams (fake clock, fake processes, fake probes): start to
Ready, readiness timeout, liveness failures, a graceful stop that escalates to SIGKILL, a start queued
behind a stop that frees its port, and `down`'s hold. No real process, no network, no sleeping."""

from __future__ import annotations

import signal

import pytest

from xgen_declare.config import Reconciler
from xgen_declare.processes.state_store import StateStore
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.states import State
from xgen_declare.testing.fakes import FakeProber, FakeProcesses, spec

SETTINGS = dict(backoff_base=10, backoff_max=300, backoff_reset=600, liveness_period=5, liveness_threshold=3)


@pytest.fixture
def prober():
    return FakeProber()


@pytest.fixture
def sup(tmp_path, clock, world, prober):
    s = Supervisor(StateStore(tmp_path / "state"), Reconciler(**SETTINGS), clock=clock, popen=world.popen,
                   prober=prober, proc_root=str(tmp_path / "proc"))
    yield s
    s.close()


def begin(sup, s, reason="test"):
    p = sup.proc(s.name)
    sup.take_spec(p, s, None)
    sup.start(p, reason)
    return p


def ticks(sup, n=3):
    for _ in range(n):
        sup.tick()


def test_start_probes_until_ready_and_records_the_process(sup, world):
    s = spec("a", port=8101)
    s.placement = {"n_gpu_layers": 12, "tensor_split": []}
    p = begin(sup, s)
    assert p.state == State.STARTING and world.last.argv == s.argv
    ticks(sup)
    rec = sup.store.load("a")
    assert (rec.state, rec.pid, rec.spec_hash, rec.port) == ("Ready", world.last.pid, s.spec_hash(), 8101)
    assert rec.placement == {"n_gpu_layers": 12, "tensor_split": []} and rec.restarts == 0
    seen = sup.observed()["a"]
    assert seen.running and seen.placement == rec.placement


def test_not_ready_in_time_is_stopped_and_backs_off(sup, world, clock, prober):
    prober.ok = False
    begin(sup, spec("a", ready_timeout=30))
    ticks(sup)
    assert sup.procs["a"].state == State.STARTING
    clock.advance(31)
    sup.tick()  # the deadline passed: SIGTERM (the fake exits on it)
    assert world.last.signals == [signal.SIGTERM]
    ticks(sup, 2)
    p = sup.procs["a"]
    assert p.state == State.CRASH_LOOP_BACK_OFF and p.rec.last_error.startswith("not ready after 30s: GET ")
    assert p.next_start_at == clock() + 10  # backoff_base
    clock.advance(10)
    sup.tick()
    assert len(world.started) == 2 and sup.procs["a"].rec.restarts == 1


def test_liveness_failures_make_it_unhealthy_then_restart_it(sup, world, clock, prober):
    begin(sup, spec("a"))
    ticks(sup)
    first = world.last
    prober.ok = False
    states = []
    for _ in range(3):
        clock.advance(5)  # liveness_period
        ticks(sup, 2)
        states.append(sup.procs["a"].state)
    assert states[:2] == [State.UNHEALTHY, State.UNHEALTHY]
    assert first.signals == [signal.SIGTERM]  # the third failure (threshold 3) stops it as a crash
    assert sup.procs["a"].rec.last_error.startswith("liveness probe failed (3/3): GET ")
    ticks(sup, 2)
    p = sup.procs["a"]
    assert p.state == State.CRASH_LOOP_BACK_OFF and p.rec.last_error.startswith("liveness probe failed 3 times")


def test_stop_sends_sigterm_then_sigkill_after_stop_grace(tmp_path, clock, monkeypatch):
    world = FakeProcesses(exit_on_sigterm=False).install(monkeypatch)
    sup = Supervisor(StateStore(tmp_path / "state"), Reconciler(**SETTINGS), clock=clock, popen=world.popen,
                     prober=FakeProber(), proc_root=str(tmp_path / "proc"))
    begin(sup, spec("a", stop_grace=7))
    ticks(sup)
    sup.stop("a", "test")
    ticks(sup)
    assert sup.procs["a"].state == State.STOPPING and world.last.signals == [signal.SIGTERM]
    clock.advance(6.9)
    sup.tick()
    assert world.last.returncode is None
    clock.advance(0.2)
    ticks(sup)
    assert world.last.signals == [signal.SIGTERM, signal.SIGKILL]
    ticks(sup)
    assert sup.store.load("a").state == "Stopped" and sup.store.load("a").pid is None
    sup.close()


def test_a_start_waits_for_the_port_a_stopping_model_frees(tmp_path, clock, monkeypatch):
    world = FakeProcesses(exit_on_sigterm=False).install(monkeypatch)
    sup = Supervisor(StateStore(tmp_path / "state"), Reconciler(**SETTINGS), clock=clock, popen=world.popen,
                     prober=FakeProber(), proc_root=str(tmp_path / "proc"))
    begin(sup, spec("old", port=8105, stop_grace=5))
    ticks(sup)
    sup.stop("old", "manifest removed", forget=True)
    sup.tick()
    new = begin(sup, spec("new", port=8105))
    assert new.state == State.PENDING and new.rec.last_error is None and len(world.started) == 1
    assert sup.busy()
    clock.advance(5.1)
    ticks(sup, 4)  # SIGKILL, the old one is gone and forgotten, the queued start runs
    assert "old" not in sup.procs and sup.store.load("old") is None
    assert sup.procs["new"].state == State.READY and world.last.argv[2] == "8105"
    sup.close()


def test_down_holds_the_spec_it_stopped(sup, world):
    s = spec("a")
    begin(sup, s)
    ticks(sup)
    sup.stop("a", "`down`", hold=True)
    ticks(sup, 2)
    rec = sup.store.load("a")
    assert (rec.state, rec.held, rec.held_hash) == ("Stopped", True, s.spec_hash())
    sup.release_hold(sup.procs["a"])
    assert (sup.procs["a"].rec.held, sup.procs["a"].rec.held_hash) == (False, None)
