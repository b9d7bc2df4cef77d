"""Fields that need no restart (rollout.IN_PLACE_FIELDS): `update` in place, with plain data."""

from __future__ import annotations


from xgen_declare.processes.settings import InPlace
from xgen_declare.reconciler.apply import execute
from xgen_declare.config import Reconciler
from xgen_declare.reconciler.plan import KEEP, RESTART, UPDATE, Action, Plan, Seen, Want, plan
from xgen_declare.processes.provenance import Provenance
from xgen_declare.reconciler.rollout import settings_changes
from xgen_declare.processes.state_store import StateStore
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.testing.fakes import FakeClock, FakeProber, spec

ARGV = ("llama-server", "--port", "8001")
BASE = {"activation": "always", "idle_timeout": None, "ready_timeout": 600.0, "stop_grace": 10.0, "labels": {}}


def want(h="h1", **settings):
    return Want(name="a", spec_hash=h, argv=ARGV, port=8001, binary_id="b", settings=InPlace.from_json({**BASE, **settings}))


def seen(settings=BASE, h="h1"):
    return Seen(name="a", state=State.READY, running=True, spec_hash=h, argv=ARGV, port=8001, binary_id="b",
                settings=InPlace.from_json(settings))


def test_idle_timeout_and_labels_update_in_place():
    p = plan({"a": want(activation="on-demand", idle_timeout=600.0, labels={"team": "x"})}, {"a": seen()})
    assert [a.format() for a in p.actions] == [
        "update   a: update in place: activation always → on-demand; idle_timeout (none) → 600; labels: team "
        "changed"]
    assert p.summary() == "0 to start, 0 to restart, 0 to stop, 1 to update in place, 0 blocked, 0 unchanged"
    assert [a.kind for a in p.changes] == [UPDATE]


def test_no_settings_recorded_is_unchanged():
    p = plan({"a": want(stop_grace=30.0)}, {"a": seen(settings=None)})
    assert p.actions[0].kind == KEEP and p.actions[0].reason == "unchanged"


def test_a_spec_change_restarts_whatever_else_changed():
    p = plan({"a": want(h="h2", stop_grace=30.0)}, {"a": seen()})
    assert p.actions[0].kind == RESTART


def test_equal_settings_keep():
    assert plan({"a": want()}, {"a": seen()}).actions[0].reason == "unchanged"
    assert plan({"a": want()}, {"a": seen()}).summary() == \
        "0 to start, 0 to restart, 0 to stop, 0 blocked, 1 unchanged"


def test_settings_changes_text():
    assert settings_changes(InPlace.from_json(BASE), InPlace.from_json({**BASE, "stop_grace": 30.0,
                                                                         "ready_timeout": 60.5})) == [
        "ready_timeout 600 → 60.5", "stop_grace 10 → 30"]
    assert settings_changes(None, InPlace.from_json(BASE)) == []
    drain = InPlace.from_json({**BASE, "rollout": {"strategy": "surge", "drain_timeout": 5}})
    assert settings_changes(InPlace.from_json(BASE), drain) == ["rollout.drain_timeout 60 → 5",
                                                               "rollout.strategy auto → surge"]


def test_supervisor_updates_the_record_not_the_process(tmp_path, world):
    clock = FakeClock()
    store = StateStore(tmp_path / "state")
    sup = Supervisor(store, Reconciler(), clock=clock, popen=world.popen, prober=FakeProber(),
                     proc_root=str(tmp_path / "proc"), provenance=lambda f: Provenance(f, "s" * 64))
    s1 = spec("a", stop_grace=5)
    execute(sup, Plan([Action("start", "a", "new model")]), {"a": s1}, {"a": want()})
    for _ in range(3):
        sup.tick()
    pid = store.load("a").pid
    s2 = spec("a", stop_grace=30)
    assert s2.spec_hash() == s1.spec_hash()
    s2.file = "/m/a.yaml"
    execute(sup, Plan([Action(UPDATE, "a", "update in place: stop_grace 5 → 30")]), {"a": s2},
                {"a": want(stop_grace=30.0)})
    rec = store.load("a")
    assert (rec.pid, rec.state, rec.stop_grace, rec.settings.stop_grace) == (pid, "Ready", 30, 30.0)
    assert rec.provenance == Provenance("/m/a.yaml", "s" * 64)
    assert len(world.started) == 1 and world.last.signals == []
    last = store.load_history("a")[-1]
    assert (last["from"], last["to"], last["result"], last["detail"]) == (
        s1.spec_hash(), s1.spec_hash(), "updated in place", "update in place: stop_grace 5 → 30")
    sup.close()
