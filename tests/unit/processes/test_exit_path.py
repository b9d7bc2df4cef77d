"""One exit path for a process that is gone, whoever notices it first (#21 finding 22), through the
Supervisor's seams (fake clock, fake processes, fake probes): the executor's `process gone` start, a
stop of a process found gone, the next daemon's load(), and a surge's processes. Each end kills what is
left of the group (SIGKILL to the old pid as a group id) and sweeps the spawn's tag before anything
starts again, and a restart honours the back-off (first crash after a Ready run at once, then
backoff_base doubling)."""

from __future__ import annotations

import signal

import pytest

from xgen_declare.config import Reconciler
from xgen_declare.processes import pids
from xgen_declare.processes.spec import Want
from xgen_declare.processes.state_store import StateStore
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.reconciler.apply import execute
from xgen_declare.reconciler.plan import START, Action, Cause, Plan
from xgen_declare.states import State
from xgen_declare.testing.fakes import FakeProber, spec

SETTINGS = dict(backoff_base=10, backoff_max=300, backoff_reset=600, liveness_period=5, liveness_threshold=3)


class Ends:
    """Records the group kills and the tag sweeps (the fakes' signal_group still runs)."""

    def __init__(self, world, monkeypatch):
        self.groups: list[tuple[int, int]] = []
        self.swept: list[str] = []

        def signal_group(pgid, sig):
            self.groups.append((pgid, sig))
            return world.signal_group(pgid, sig)

        def sweep(prefix, sig=signal.SIGKILL):
            self.swept.append(prefix)
            return []

        monkeypatch.setattr(pids, "signal_group", signal_group)
        monkeypatch.setattr(pids, "sweep", sweep)


@pytest.fixture
def ends(world, monkeypatch):
    return Ends(world, monkeypatch)


def make(tmp_path, clock, world, one_shot=False):
    return Supervisor(StateStore(tmp_path / "state"), Reconciler(**SETTINGS), clock=clock, popen=world.popen,
                      prober=FakeProber(), proc_root=str(tmp_path / "proc"), one_shot=one_shot)


def ready(sup, name="a"):
    for _ in range(3):
        sup.tick()
    assert sup.procs[name].state == State.READY


def gone_start(sup, name="a", cause=Cause.PROCESS_GONE):
    """What a pass that saw the exit before the tick plans: START, cause process_gone."""
    s = spec(name)
    w = Want(name=name, spec_hash=s.spec_hash(), argv=tuple(s.argv), port=s.port)
    execute(sup, Plan([Action(START, name, "process gone (was Ready)", cause=cause)]), {name: s}, {name: w})


def first_start(sup, name="a"):
    gone_start(sup, name, Cause.NEW)


def test_a_process_gone_start_runs_the_exit_path_and_honours_the_back_off(tmp_path, clock, world, ends):
    sup = make(tmp_path, clock, world)
    first_start(sup)
    ready(sup)
    first = world.last
    marker = sup.procs["a"].rec.marker
    ends.groups.clear(), ends.swept.clear()
    first.exit(-9)  # kill -9; the pass plans before the tick noticed
    gone_start(sup)
    p = sup.procs["a"]
    assert (first.pid, signal.SIGKILL) in ends.groups and marker in ends.swept  # what is left of it, first
    assert p.rec.last_error.startswith("killed by signal 9")
    # the first crash after a Ready run restarts at once, counted, by the tick (the back-off's own start)
    assert p.state == State.CRASH_LOOP_BACK_OFF and p.next_start_at == clock() and len(world.started) == 1
    sup.tick()
    assert p.state == State.STARTING and len(world.started) == 2 and p.rec.restarts == 1
    ready(sup)
    second = world.last
    second.exit(-9)
    gone_start(sup)  # the second crash within the window: backoff_base, not a start past it
    assert p.state == State.CRASH_LOOP_BACK_OFF and p.next_start_at == clock() + 10 and len(world.started) == 2
    assert (second.pid, signal.SIGKILL) in ends.groups
    clock.advance(9.9)
    sup.tick()
    assert len(world.started) == 2
    clock.advance(0.1)
    sup.tick()
    assert p.state == State.STARTING and len(world.started) == 3 and p.rec.restarts == 2


def test_settle_exits_ends_what_the_tick_has_not_seen_yet(tmp_path, clock, world, ends):
    sup = make(tmp_path, clock, world)
    first_start(sup)
    ready(sup)
    world.last.exit(1)
    assert sup.settle_exits() == ["a"] and sup.settle_exits() == []  # handled once
    assert sup.procs["a"].state == State.CRASH_LOOP_BACK_OFF and sup.procs["a"].rec.pid is None
    assert sup.observed()["a"].state == State.CRASH_LOOP_BACK_OFF  # the plan sees the back-off, not a gone Ready


def test_a_stop_of_a_process_found_gone_still_kills_what_is_left(tmp_path, clock, world, ends):
    sup = make(tmp_path, clock, world)
    first_start(sup)
    ready(sup)
    first = world.last
    ends.groups.clear()
    first.exit(-9)
    sup.stop("a", "manifest removed", forget=True)  # the model was deleted as its process died
    assert (first.pid, signal.SIGKILL) in ends.groups and "a" not in sup.procs and len(world.started) == 1


@pytest.mark.parametrize("state, delay", [("Ready", 0), ("Starting", 10)])
def test_the_next_daemon_ends_a_gone_process_through_the_same_path(tmp_path, clock, world, ends, state, delay):
    sup = make(tmp_path, clock, world)
    first_start(sup)
    ready(sup)
    rec = sup.procs["a"].rec
    pid, marker = rec.pid, rec.marker
    rec.state = state
    sup.save(rec)
    world.last.exit(-9)  # while no daemon watched (the fakes are no real processes: nothing matches)
    ends.groups.clear(), ends.swept.clear()
    again = make(tmp_path, clock, world)
    again.load()
    p = again.procs["a"]
    assert (pid, signal.SIGKILL) in ends.groups and marker in ends.swept
    assert p.state == State.CRASH_LOOP_BACK_OFF and p.next_start_at == clock() + delay
    assert p.rec.last_error.startswith("exited while no daemon was watching")
    assert again.store.load("a").state == "CrashLoopBackOff"


def test_one_shot_apply_still_starts_a_process_that_died_while_no_daemon_watched(tmp_path, clock, world, ends):
    sup = make(tmp_path, clock, world)
    first_start(sup)
    ready(sup)
    pid = sup.procs["a"].rec.pid
    world.last.exit(-9)
    ends.groups.clear()
    once = make(tmp_path, clock, world, one_shot=True)
    once.load()
    assert (pid, signal.SIGKILL) in ends.groups  # the rest of its group, also here
    assert once.procs["a"].state == State.READY and once.procs["a"].rec.pid is None  # the plan: process gone
    gone_start(once)
    assert once.procs["a"].state == State.STARTING and once.procs["a"].rec.restarts == 1


def test_a_surge_successor_that_dies_goes_through_the_exit_path(tmp_path, clock, world, ends):
    sup = make(tmp_path, clock, world)
    first_start(sup)
    ready(sup)
    p = sup.procs["a"]
    sup.surge(p, spec("a", port=8102, version="2"), None, "edit")
    successor = world.last
    ends.groups.clear()
    successor.exit(-9)
    sup.settle_exits()
    assert (successor.pid, signal.SIGKILL) in ends.groups and p.successor is None
    assert "(the old process kept serving): killed by signal 9 during start; last log" in p.rec.rollout_error
    assert p.state == State.READY  # the old process kept serving
