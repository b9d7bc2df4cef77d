"""Crash back-off through the Supervisor (fake clock, fake processes, fake probes): reset after a long
enough Ready run, and a fresh sequence for a new spec."""

import pytest

from xgen_declare.reconciler.apply import execute
from xgen_declare.config import Reconciler
from xgen_declare.reconciler.plan import RESTART, START, Action, Plan
from xgen_declare.processes.state_store import StateStore
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.testing.fakes import FakeProber, spec


@pytest.fixture
def sup(tmp_path, clock, world):
    settings = Reconciler(backoff_base=10, backoff_max=300, backoff_reset=600, liveness_period=10)
    s = Supervisor(StateStore(tmp_path / "state"), settings, clock=clock, popen=world.popen,
                   prober=FakeProber(), proc_root=str(tmp_path / "proc"))
    yield s
    s.close()


def start(sup, s, kind=START):
    execute(sup, Plan([Action(kind, s.name, "test")]), {s.name: s}, {})


def ready(sup):
    for _ in range(3):
        sup.tick()
    assert sup.procs["a"].state == State.READY


def crash(sup, world, clock) -> float:
    """The running fake exits; returns the back-off delay the supervisor chose."""
    world.last.exit(1)
    sup.tick()
    p = sup.procs["a"]
    assert p.state == State.CRASH_LOOP_BACK_OFF
    return p.next_start_at - clock()


def retry(sup, clock, delay):
    clock.advance(delay)
    sup.tick()
    assert sup.procs["a"].state == State.STARTING


def test_backoff_resets_after_backoff_reset_seconds_ready(sup, world, clock):
    start(sup, spec("a"))
    delays = []
    for _ in range(5):
        delays.append(crash(sup, world, clock))
        retry(sup, clock, delays[-1])
    assert delays == [10, 20, 40, 80, 160]
    ready(sup)
    clock.advance(601)  # Ready for longer than backoff_reset
    sup.tick(), sup.tick()
    assert sup.procs["a"].state == State.READY
    world.last.exit(1)  # a new sequence: its first crash after a Ready run restarts at once
    sup.tick()
    assert sup.procs["a"].state == State.STARTING and len(world.started) == 7
    ready(sup)
    assert crash(sup, world, clock) == 10  # the second crash within the window waits backoff_base
    assert sup.procs["a"].rec.last_error.endswith("(restarting in 10s)")


def test_a_short_ready_run_keeps_the_sequence(sup, world, clock):
    start(sup, spec("a"))
    for want in (10, 20, 40):
        assert crash(sup, world, clock) == want
        retry(sup, clock, want)
    ready(sup)
    clock.advance(599)
    sup.tick(), sup.tick()
    assert crash(sup, world, clock) == 80


def test_a_new_spec_starts_with_a_fresh_backoff(sup, world, clock):
    start(sup, spec("a"))
    for want in (10, 20, 40, 80, 160):
        assert crash(sup, world, clock) == want
        retry(sup, clock, want)
    assert crash(sup, world, clock) == 300
    start(sup, spec("a", version="2"), RESTART)  # the manifest changed while it waits 300 s
    assert sup.procs["a"].state == State.STARTING
    assert crash(sup, world, clock) == 10
    retry(sup, clock, 10)
    assert crash(sup, world, clock) == 20
