"""Provenance in the record and the rollout history, through the Supervisor (fake clock, processes,
probes, git)."""

import pytest

from xgen_declare.reconciler.apply import execute
from xgen_declare.config import Reconciler
from xgen_declare.reconciler.plan import RESTART, START, STOP, Action, Plan
from xgen_declare.processes import history
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import StateStore
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.testing.fakes import FakeProber, spec

COMMIT = "f" * 40


@pytest.fixture
def store(tmp_path):
    return StateStore(tmp_path / "state")


@pytest.fixture
def sup(tmp_path, store, clock, world):
    prov = lambda file: Provenance(file, "0" * 64, COMMIT, False) if file else Provenance()
    s = Supervisor(store, Reconciler(), clock=clock, popen=world.popen,
                   prober=FakeProber(), proc_root=str(tmp_path / "proc"), provenance=prov)
    yield s
    s.close()


def run(sup, s, kind=START):
    execute(sup, Plan([Action(kind, s.name, "test")]), {s.name: s}, {})


def settle(sup, clock, steps=4):
    for _ in range(steps):
        sup.tick()
        clock.advance(1)


def versioned(version: str):
    s = spec("a", version=version, ready_timeout=30)
    s.file = "/m/a.yaml"
    return s


def test_first_start_and_an_edit_are_recorded(sup, store, clock):
    v1, v2 = versioned("1"), versioned("2")
    run(sup, v1)
    settle(sup, clock)
    assert sup.procs["a"].state == State.READY
    rec = store.load("a")
    assert rec.provenance == Provenance("/m/a.yaml", "0" * 64, COMMIT, False)
    assert rec.to_json()["provenance"] == {"file": "/m/a.yaml", "sha256": "0" * 64, "commit": COMMIT, "dirty": False}
    assert rec.rollout is None
    run(sup, v2, RESTART)
    settle(sup, clock)
    assert sup.procs["a"].state == State.READY
    entries = store.load_history("a")
    assert [(e["from"], e["to"], e["result"]) for e in entries] == [
        (None, v1.spec_hash(), "succeeded"), (v1.spec_hash(), v2.spec_hash(), "succeeded")]
    assert entries[1]["commit"] == COMMIT and entries[1]["file"] == "/m/a.yaml"


def test_a_spec_that_dies_before_ready_is_failed_once(sup, store, clock, world):
    sup.prober.ok = False
    run(sup, versioned("1"))  # nothing to roll back to: crash loop
    sup.tick()
    world.last.exit(3)
    settle(sup, clock)
    # the crash loop retries the same spec: not a new rollout
    clock.advance(20)
    settle(sup, clock)
    world.last.exit(3)
    settle(sup, clock)
    assert len(world.started) == 2
    entries = store.load_history("a")
    assert [e["result"] for e in entries] == ["failed"]
    assert entries[0]["detail"] == "exited with code 3 during start"


def test_stopped_before_ready_is_interrupted(sup, store, clock):
    sup.prober.ok = False
    run(sup, versioned("1"))
    sup.tick()
    run(sup, versioned("1"), STOP)
    settle(sup, clock)
    [entry] = store.load_history("a")
    assert entry["result"] == "interrupted"
    assert entry["detail"] == "stopped before it was Ready: test"


def test_a_restart_of_the_same_spec_is_not_a_rollout(sup, store, clock):
    run(sup, versioned("1"))
    settle(sup, clock)
    sup.restart("a", "restart requested")
    settle(sup, clock)
    assert sup.procs["a"].state == State.READY
    assert len(store.load_history("a")) == 1


def test_history_is_bounded(store):
    for i in range(25):
        store.append_history("a", {"to": str(i)})
    entries = store.load_history("a")
    assert [e["to"] for e in entries] == [str(i) for i in range(5, 25)]


def test_an_unwritable_history_is_written_later(tmp_path, clock, world):
    from xgen_declare.testing.fakes import FailingWriter

    writer = FailingWriter()
    store = StateStore(tmp_path / "state", writer=writer)
    sup = Supervisor(store, Reconciler(), clock=clock, popen=world.popen, prober=FakeProber(),
                     proc_root=str(tmp_path / "proc"), provenance=lambda f: Provenance())
    writer.fail(store.root / "history")
    run(sup, versioned("1"))
    settle(sup, clock)
    assert store.load_history("a") == []
    writer.heal()
    settle(sup, clock)
    assert [e["result"] for e in store.load_history("a")] == ["succeeded"]


def test_an_entry_keeps_the_json_shape_of_the_record_and_the_history_file():
    prov = Provenance("/m/a.yaml", "0" * 64, COMMIT, True)
    entry = history.open_entry("h1", "h2", prov, now=10.0)
    assert (entry.from_hash, entry.to_hash, entry.provenance, entry.result) == ("h1", "h2", prov, None)
    opened = {"started_at": 10.0, "from": "h1", "to": "h2", "file": "/m/a.yaml", "sha256": "0" * 64,
              "commit": COMMIT, "dirty": True, "result": None, "detail": None, "ended_at": None}
    assert entry.to_json() == opened and list(entry.to_json()) == list(opened)
    closed = history.close_entry(entry, history.Result.ROLLED_BACK, "exited with 1\nlog tail", now=12.5)
    assert closed.to_json() == {**opened, "result": "rolled back", "detail": "exited with 1", "ended_at": 12.5}
    assert history.Entry.from_json(closed.to_json()) == closed
    assert history.Entry.from_json({**opened, "result": "exploded"}) == entry  # unknown: read as open
