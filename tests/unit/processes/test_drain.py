"""Drain before a stop (issue 15 item 3), through the Supervisor with fakes: the router's requests in
flight finish first (bounded by rollout.drain_timeout), the router sends nothing new meanwhile."""

from __future__ import annotations

import signal

import pytest

from xgen_declare.processes.settings import InPlace
from xgen_declare.reconciler.apply import execute
from xgen_declare.config import Reconciler
from xgen_declare.reconciler.plan import KEEP, RESTART, START, STOP, Action, Plan, Want
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import StateStore
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.testing.fakes import FakeProber, spec


def want(name="a", drain=30.0, h="h"):
    return Want(name=name, spec_hash=h, argv=("x",), port=8001,
                settings=InPlace.from_json({"rollout": {"strategy": "recreate", "drain_timeout": drain}}))


@pytest.fixture
def sup(tmp_path, clock, world):
    s = Supervisor(StateStore(tmp_path / "state"), Reconciler(), clock=clock, popen=world.popen,
                   prober=FakeProber(), proc_root=str(tmp_path / "proc"), provenance=lambda f: Provenance())
    s.busy_requests = {}
    s.hooks.register_router(lambda name: s.busy_requests.get(name, 0), lambda name, port: 0)
    yield s
    s.close()


def act(sup, kind, s, w=None, **kw):
    execute(sup, Plan([Action(kind, s.name, "test", **kw)]), {s.name: s}, {s.name: w or want(s.name)})


def ready(sup, name="a"):
    for _ in range(3):
        sup.tick()
    assert sup.procs[name].state == State.READY


def test_a_restart_waits_for_the_requests_in_flight(sup, world, clock):
    act(sup, START, spec("a", version="1"))
    ready(sup)
    old = world.last
    sup.busy_requests["a"] = 2
    act(sup, RESTART, spec("a", version="2"))
    sup.tick()
    assert sup.draining("a") and sup.procs["a"].state == State.READY and old.signals == []
    assert sup.busy()
    clock.advance(10)
    sup.busy_requests["a"] = 0
    sup.tick()
    assert old.signals == [signal.SIGTERM] and not sup.draining("a")
    sup.tick()
    assert sup.procs["a"].state == State.STARTING and world.last is not old


def test_drain_timeout_bounds_the_wait(sup, world, clock):
    act(sup, START, spec("a"))
    ready(sup)
    sup.busy_requests["a"] = 1
    act(sup, STOP, spec("a"), want(drain=5.0))
    clock.advance(4.9)
    sup.tick()
    assert world.last.signals == []
    clock.advance(0.2)
    sup.tick()
    assert world.last.signals == [signal.SIGTERM]
    sup.tick()
    assert sup.procs["a"].state == State.STOPPED


def test_no_request_in_flight_stops_at_once(sup, world):
    act(sup, START, spec("a"))
    ready(sup)
    act(sup, STOP, spec("a"))
    assert world.last.signals == [signal.SIGTERM] and not sup.draining("a")


def test_drain_timeout_zero_does_not_wait(sup, world):
    act(sup, START, spec("a"))
    ready(sup)
    sup.busy_requests["a"] = 3
    act(sup, STOP, spec("a"), want(drain=0.0))
    assert world.last.signals == [signal.SIGTERM]


def test_wanted_again_cancels_the_drain(sup, world, clock):
    act(sup, START, spec("a"))
    ready(sup)
    sup.busy_requests["a"] = 1
    act(sup, STOP, spec("a"), idle=True)
    assert sup.draining("a")
    act(sup, KEEP, spec("a"))
    assert not sup.draining("a")
    sup.busy_requests["a"] = 0
    clock.advance(100)
    sup.tick()
    assert world.last.signals == [] and sup.procs["a"].state == State.READY


def test_a_removal_during_a_drain_wins(sup, world):
    act(sup, START, spec("a"))
    ready(sup)
    sup.busy_requests["a"] = 1
    act(sup, RESTART, spec("a", version="2"))
    act(sup, STOP, spec("a"), forget=True)
    sup.busy_requests["a"] = 0
    sup.tick()
    sup.tick()
    assert "a" not in sup.procs and len(world.started) == 1


def test_exit_while_draining_is_a_stop_not_a_crash(sup, world):
    act(sup, START, spec("a"))
    ready(sup)
    sup.busy_requests["a"] = 1
    act(sup, STOP, spec("a"))
    world.last.exit(0)
    sup.tick()
    assert sup.procs["a"].state == State.STOPPED and sup.procs["a"].next_start_at is None


def test_another_model_waits_for_a_draining_models_port(sup, world):
    act(sup, START, spec("a", port=8001))
    ready(sup)
    sup.busy_requests["a"] = 1
    act(sup, STOP, spec("a", port=8001), idle=True)
    act(sup, START, spec("b", port=8001), want("b"))
    assert sup.procs["b"].state == State.PENDING and sup.procs["b"].queued
    sup.busy_requests["a"] = 0
    for _ in range(3):
        sup.tick()
    assert sup.procs["a"].state == State.IDLE and sup.procs["b"].state == State.STARTING


def test_the_router_never_sees_a_signalled_process_as_servable(sup, world, monkeypatch):
    """Between SIGTERM and the Stopping state (recorded after the signal), the model must read as draining
    (Router._ready_url checks both): otherwise a request goes to a dying process (seen as a 502
    ConnectError in tests/integration/test_rollout_drain.py before this was fixed)."""
    from xgen_declare.processes import pids

    seen = []
    real = world.signal_group

    def spy(pgid, sig):
        p = sup.procs["a"]
        seen.append(p.state == State.STOPPING or sup.draining("a"))
        return real(pgid, sig)

    monkeypatch.setattr(pids, "signal_group", spy)
    act(sup, START, spec("a"))
    ready(sup)
    sup.busy_requests["a"] = 1
    act(sup, RESTART, spec("a", version="2"))  # drained, then stopped
    sup.busy_requests["a"] = 0
    sup.tick()
    assert seen == [True]
    assert sup.procs["a"].state == State.STOPPING and not sup.draining("a")
