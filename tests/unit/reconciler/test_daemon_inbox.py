"""Finding 5 (#21): the control loop's inbox is bounded (a full one refuses, LoopBusy), a step runs at most
INBOX_PER_STEP requests (and none after INBOX_BUDGET seconds), and the supervisor's tick and the passes
still run while a flood waits. Reads come from the published snapshot, never from the inbox."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import model_yaml
from xgen_declare.errors import LoopBusy
from xgen_declare.reconciler import daemon as daemon_module
from xgen_declare.reconciler.daemon import INBOX_LIMIT, INBOX_PER_STEP
from xgen_declare.reconciler.snapshot import Previewer


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


def test_a_flood_of_submits_is_bounded_and_refused_with_busy(daemon):
    futures = [daemon.submit(lambda d, i=i: i) for i in range(INBOX_LIMIT)]
    with pytest.raises(LoopBusy) as exc:
        daemon.submit(lambda d: "one too many")
    assert str(exc.value) == (f"the daemon is busy: {INBOX_LIMIT} requests already wait for its control loop; "
                              "try again in a moment")
    assert exc.value.exit_code == 4
    assert daemon.inbox.qsize() == INBOX_LIMIT  # the refused one was not queued
    assert [f.done() for f in futures].count(True) == 0


def test_a_step_runs_at_most_n_requests_and_the_supervisor_still_ticks(daemon, clock, monkeypatch):
    ticks = []
    monkeypatch.setattr(daemon.sup, "tick", lambda: ticks.append(len([f for f in futures if f.done()])))
    futures = [daemon.submit(lambda d, i=i: i) for i in range(INBOX_LIMIT)]
    daemon.wake.clear()
    daemon.step()
    assert sum(f.done() for f in futures) == INBOX_PER_STEP
    assert ticks == [INBOX_PER_STEP]  # the tick ran after those, not after the whole flood
    assert daemon.wake.is_set()  # the rest: the next step comes at once
    steps = 1
    while not all(f.done() for f in futures):
        daemon.step()
        clock.advance(0.05)
        steps += 1
        assert steps <= INBOX_LIMIT  # bounded: a hang fails here
    assert steps == INBOX_LIMIT // INBOX_PER_STEP
    assert [f.result() for f in futures] == list(range(INBOX_LIMIT))
    assert ticks == [INBOX_PER_STEP * (i + 1) for i in range(steps)]


def test_a_slow_request_ends_the_steps_share(daemon, monkeypatch):
    monkeypatch.setattr(daemon_module, "INBOX_BUDGET", 0.0)  # every request is "slow": one per step
    futures = [daemon.submit(lambda d, i=i: i) for i in range(3)]
    daemon.step()
    assert [f.done() for f in futures] == [True, False, False]


def test_the_pass_still_runs_while_a_flood_waits(daemon, clock):
    daemon.step()
    passes = daemon.passes
    for _ in range(INBOX_LIMIT):
        daemon.submit(lambda d: None)
    clock.advance(61)  # the resync is due
    daemon.step()
    assert daemon.passes == passes + 1 and daemon.inbox.qsize() == INBOX_LIMIT - INBOX_PER_STEP


def test_failed_requests_go_back_to_their_caller(daemon):
    def boom(d):
        raise ValueError("no")

    fut = daemon.submit(boom)
    ok = daemon.submit(lambda d: "yes")
    daemon.step()
    with pytest.raises(ValueError, match="no"):
        fut.result(0)
    assert ok.result(0) == "yes"


def test_reads_come_from_the_snapshot_without_the_loop(daemon):
    daemon.step()
    snap = daemon.snapshot
    assert snap is not None and snap.known == {"m"}
    version = snap.version
    daemon.step()
    assert daemon.snapshot is snap  # nothing changed: the same snapshot, the same version
    for _ in range(INBOX_LIMIT):  # a full inbox, and no step runs from here on
        daemon.submit(lambda d: None)
    computed = []

    def compute(*args, **kw):
        computed.append(threading.current_thread().name)
        from xgen_declare.reconciler.apply import compute as real
        return real(*args, **kw)

    previewer = Previewer(lambda: daemon.snapshot, daemon.env.inventory, compute_fn=compute, fresh=60)
    results = []
    threads = [threading.Thread(target=lambda: results.append(previewer.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and len(computed) == 1  # one plan for eight readers
    result, seen_snap = results[0]
    assert seen_snap.version == version
    assert {a.name: a.kind.value for a in result.plan.actions} == {"m": "keep"}
    assert daemon.inbox.qsize() == INBOX_LIMIT  # nothing was queued on the loop


def test_a_new_snapshot_is_published_when_the_models_change(daemon, clock):
    daemon.step()
    before = daemon.snapshot
    Path(daemon.env.paths[0], "n.yaml").write_text(model_yaml("n", backend="llama-server-cpu", enabled=False))
    daemon.file_changed("n.yaml")
    daemon.step()
    assert daemon.snapshot.version == before.version + 1 and daemon.snapshot.known == {"m", "n"}
