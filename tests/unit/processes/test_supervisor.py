"""The Supervisor's state machine through its seams (fake clock, fake processes, fake probes): start to
Ready, readiness timeout, liveness failures, a graceful stop that escalates to SIGKILL, a start queued
behind a stop that frees its port, and `down`'s hold. No real process, no network, no sleeping."""

from __future__ import annotations

import signal

import pytest

from xgen_declare.processes.settings import Placed
from xgen_declare.config import Reconciler
from xgen_declare.processes.state_store import StateStore
from xgen_declare.processes.spec import Want
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.reconciler.plan import Cause, plan
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
    s.placement = Placed(12, [])
    p = begin(sup, s)
    assert p.state == State.STARTING and world.last.argv == s.argv
    ticks(sup)
    rec = sup.store.load("a")
    assert (rec.state, rec.pid, rec.spec_hash, rec.port) == ("Ready", world.last.pid, s.spec_hash(), 8101)
    assert rec.placement == Placed(12, []) and rec.restarts == 0
    assert rec.to_json()["placement"] == {"n_gpu_layers": 12, "tensor_split": []}  # the record's JSON as before
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
    # the first crash after a Ready run restarts at once (backoff.py), in the tick that handled it
    assert p.state == State.STARTING and len(world.started) == 2 and p.rec.restarts == 1
    assert p.rec.last_error.startswith("liveness probe failed 3 times")
    assert p.rec.last_error.endswith("(restarting at once (the first crash after a Ready run))")


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


# ---- surge (processes/surge.py) ------------------------------------------------------------------

def serving(sup, world, port=8101):
    old = spec("a", port=port, version="1")
    begin(sup, old)
    ticks(sup)
    return old, world.last


def test_surge_starts_beside_the_old_process_and_takes_over_when_ready(sup, world, clock):
    old, first = serving(sup, world)
    new = spec("a", port=8102, version="2")
    p = sup.procs["a"]
    events = []
    sup.hooks.register_events(lambda type_, **data: events.append(type_))
    sup.surge(p, new, None, "argv changed")
    successor = world.last
    assert successor is not first and first.returncode is None
    assert p.state == State.READY and p.rec.port == 8101  # the old one still serves
    assert sup.store.load("a").surge.port == 8102 and sup.observed()["a"].surge_hash == new.spec_hash()
    ticks(sup, 2)  # probed Ready: the swap
    rec = sup.store.load("a")
    assert (rec.state, rec.pid, rec.port, rec.spec_hash) == ("Ready", successor.pid, 8102, new.spec_hash())
    assert rec.retiring.pid == first.pid and rec.surge is None and rec.last_good_spec_hash == new.spec_hash()
    busy = {("a", 8101): 1}
    sup.hooks.register_router(lambda name: 0, lambda name, port: busy.get((name, port), 0))
    clock.advance(2)
    ticks(sup)
    assert first.signals == []  # a request still runs on the old process
    busy.clear()
    ticks(sup, 3)
    assert first.signals == [signal.SIGTERM] and successor.signals == []
    rec = sup.store.load("a")
    assert rec.retiring is None and p.retiring is None and rec.pid == successor.pid
    assert events == ["rollout_started", "rollout_succeeded"]
    assert [e["result"] for e in sup.store.load_history("a")] == ["succeeded", "succeeded"]


def test_a_surge_that_fails_leaves_the_old_process_serving(sup, world):
    old, first = serving(sup, world)
    p = sup.procs["a"]
    new = spec("a", port=8102, version="2")
    planned = spec("a", port=8101, version="2").spec_hash()  # how the plan knows the spec: on the model's port
    want = Want(name="a", spec_hash=new.spec_hash(), argv=tuple(new.argv), port=8102, planned_hash=planned)
    sup.surge(p, new, want, "argv changed")
    world.last.exit(3)
    sup.tick()
    rec = sup.store.load("a")
    assert (rec.state, rec.pid, rec.surge) == ("Ready", first.pid, None) and first.signals == []
    bad = planned  # so the next pass keeps it out (plan: rolled back), instead of surging it again and again
    assert plan({"a": Want(name="a", spec_hash=planned, argv=(), port=8101)}, sup.observed()).get("a").cause \
        == Cause.ROLLED_BACK
    assert rec.failed_spec_hash == bad and rec.rollout_error.startswith(
        f"the rollout of spec {bad} failed (the old process kept serving): exited with code 3 during start; "
        "last log lines:\n")
    assert sup.store.load_history("a")[-1]["result"] == "failed"


def test_a_newer_spec_or_a_stop_ends_the_surge_under_way(sup, world):
    serving(sup, world)
    p = sup.procs["a"]
    sup.surge(p, spec("a", port=8102, version="2"), None, "edit 1")
    second = world.last
    sup.surge(p, spec("a", port=8103, version="3"), None, "edit 2")
    assert second.signals == [signal.SIGKILL] and world.last.argv[2] == "8103"
    sup.abort_surge(p, "stop: manifest removed")
    assert world.last.signals == [signal.SIGKILL] and p.successor is None and sup.store.load("a").surge is None


def test_a_surge_interrupted_by_a_daemon_restart_is_rolled_back(sup, world, tmp_path, clock):
    serving(sup, world)
    p = sup.procs["a"]
    sup.surge(p, spec("a", port=8102, version="2"), None, "edit")
    assert sup.store.load("a").surge is not None
    again = Supervisor(sup.store, Reconciler(**SETTINGS), clock=clock, popen=world.popen, prober=FakeProber(),
                       proc_root=str(tmp_path / "proc"))
    again.load()  # the fakes are no real processes: both count as gone, and the surge is settled
    rec = again.store.load("a")
    assert rec.surge is None and again.procs["a"].successor is None
    assert sup.store.load_history("a")[-1]["result"] == "interrupted"


def test_stopping_a_model_ends_its_surge_first(sup, world):
    old, first = serving(sup, world)
    sup.surge(sup.procs["a"], spec("a", port=8102, version="2"), None, "edit")
    successor = world.last
    sup.stop_all("daemon exits with --stop-on-exit")
    assert successor.signals == [signal.SIGKILL] and first.signals == [signal.SIGTERM]
    ticks(sup, 3)
    assert sup.store.load("a").state == "Stopped" and sup.procs["a"].successor is None and not sup.busy()
