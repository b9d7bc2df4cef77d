"""Automatic rollback (issue 15 item 2) through the Supervisor with fakes, and the plan's rule that a
rolled-back spec is not retried in a loop (plain data)."""

from __future__ import annotations


from xgen_declare.config import Reconciler
from xgen_declare.reconciler.apply import execute
from xgen_declare.reconciler.plan import KEEP, RESTART, START, Action, Plan, Request, Seen, Want, plan
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import StateStore
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.testing.fakes import FakeProber, spec


def make(tmp_path, clock, world, one_shot=False):
    s = Supervisor(StateStore(tmp_path / "state"), Reconciler(backoff_base=10), clock=clock, popen=world.popen,
                   prober=FakeProber(), proc_root=str(tmp_path / "proc"), provenance=lambda f: Provenance(),
                   one_shot=one_shot)
    s.events = []
    s.hooks.register_events(lambda type_, **data: s.events.append((type_, data.get("from_hash"), data.get("to_hash"))))
    return s


def act(sup, kind, s):
    w = Want(name="a", spec_hash=s.spec_hash(), argv=tuple(s.argv), port=s.port)
    execute(sup, Plan([Action(kind, "a", "test")]), {"a": s}, {"a": w})


def settle(sup, n=3):
    for _ in range(n):
        sup.tick()
        sup.clock.advance(0.5)


def version(world) -> str:
    return world.last.argv[-1]


def roll_out_a_bad_spec(sup, world):
    v1, v2 = spec("a", version="1"), spec("a", version="2")
    act(sup, START, v1)
    settle(sup)
    act(sup, RESTART, v2)
    settle(sup, 2)
    assert version(world) == "2" and sup.procs["a"].state == State.STARTING
    world.last.exit(3)
    sup.tick()
    return v1, v2


def test_a_spec_that_dies_before_ready_rolls_back(tmp_path, clock, world):
    sup = make(tmp_path, clock, world)
    v1, v2 = roll_out_a_bad_spec(sup, world)
    assert version(world) == "1"  # the last good spec, started again at once (no back-off)
    settle(sup)
    rec = sup.store.load("a")
    assert (rec.state, rec.spec_hash, rec.last_good_spec_hash, rec.failed_spec_hash) == (
        "Ready", v1.spec_hash(), v1.spec_hash(), v2.spec_hash())
    assert rec.rollout_error.startswith(f"the rollout of spec {v2.spec_hash()} failed: exited with code 3 during "
                                        "start; last log lines:\n")  # with the log tail
    assert [e["result"] for e in sup.store.load_history("a")] == ["succeeded", "failed", "rolled back"]
    assert sup.events == [("rollout_started", v1.spec_hash(), v2.spec_hash()),
                          ("rollout_failed", v1.spec_hash(), v2.spec_hash()),
                          ("rolled_back", None, v1.spec_hash())]
    # the next pass still wants v2: kept, and the good spec stays what a crash restarts
    act(sup, KEEP, v2)
    world.last.exit(1)
    sup.tick()
    clock.advance(11)
    sup.tick()
    assert version(world) == "1"
    sup.close()


def test_restart_verb_tries_the_failed_spec_again(tmp_path, clock, world):
    sup = make(tmp_path, clock, world)
    v1, v2 = roll_out_a_bad_spec(sup, world)
    settle(sup)
    w2 = Want(name="a", spec_hash=v2.spec_hash(), argv=tuple(v2.argv), port=v2.port)
    assert plan({"a": w2}, sup.observed()).get("a").kind == KEEP  # rolled back: not retried by itself
    asked = plan({"a": w2}, sup.observed(), requests={"a": Request.RESTART})  # `restart a`: a plan input
    assert (asked.get("a").kind, asked.get("a").retry) == (RESTART, True)
    execute(sup, asked, {"a": v2}, {"a": w2})
    assert sup.procs["a"].rec.failed_spec_hash is None
    settle(sup, 3)
    assert version(world) == "2"
    sup.close()


def test_a_failing_rollback_is_not_rolled_back_again(tmp_path, clock, world):
    sup = make(tmp_path, clock, world)
    roll_out_a_bad_spec(sup, world)
    started = len(world.started)
    world.last.exit(3)  # the rollback (v1) dies too
    sup.tick()
    assert len(world.started) == started and sup.procs["a"].state == State.CRASH_LOOP_BACK_OFF
    clock.advance(11)
    sup.tick()
    assert version(world) == "1"  # the back-off retries the good spec
    sup.close()


def test_one_shot_apply_reports_the_failure(tmp_path, clock, world):
    sup = make(tmp_path, clock, world, one_shot=True)
    roll_out_a_bad_spec(sup, world)
    assert sup.procs["a"].state == State.FAILED and version(world) == "2"
    sup.close()


def _seen(state=State.READY, running=True, failed="h2"):
    return Seen(name="a", state=state, running=running, spec_hash="h1", argv=("x", "1"), port=8001,
                failed_hash=failed)


def test_plan_keeps_a_rolled_back_model():
    w = Want(name="a", spec_hash="h2", argv=("x", "2"), port=8001)
    [a] = plan({"a": w}, {"a": _seen()}).actions
    assert a.format() == ("keep     a: rolled back: a rollout of this spec (h2) failed; fix the manifest, or run "
                          "`xgen-declare restart a` to try it again")
    assert plan({"a": w}, {"a": _seen(State.CRASH_LOOP_BACK_OFF, False)}).actions[0].kind == KEEP
    w3 = Want(name="a", spec_hash="h3", argv=("x", "3"), port=8001)
    assert plan({"a": w3}, {"a": _seen()}).actions[0].kind == RESTART
    assert plan({"a": w}, {"a": _seen(State.STOPPED, False)}).actions[0].kind == "start"


def test_an_edit_during_a_rollout_wins_without_orphans(tmp_path, clock, world):
    sup = make(tmp_path, clock, world)
    v1, v2, v3 = (spec("a", version=v) for v in "123")
    act(sup, START, v1)
    settle(sup)
    sup.prober.ok = False  # v2 stays Starting
    act(sup, RESTART, v2)
    settle(sup, 2)
    assert version(world) == "2" and sup.procs["a"].state == State.STARTING
    act(sup, RESTART, v3)  # the newest spec wins
    sup.prober.ok = True
    settle(sup, 4)
    assert version(world) == "3" and sup.procs["a"].state == State.READY
    alive = [p for p in world.started if p.returncode is None]
    assert [p.argv[-1] for p in alive] == ["3"]
    assert [(e["to"], e["result"]) for e in sup.store.load_history("a")] == [
        (v1.spec_hash(), "succeeded"), (v2.spec_hash(), "interrupted"), (v3.spec_hash(), "succeeded")]
    assert sup.store.load("a").rollout_error is None  # an interrupted rollout is not rolled back
    sup.close()
