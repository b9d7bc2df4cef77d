"""The daemon's step: a failing part never stops the others, and a state dir that cannot be written is
reported as state_write_failed (log once per pass, daemon.json for `status`, /metrics) until it heals."""

import json
import logging

import pytest

from xgen_declare.api.metrics import Metrics
from xgen_declare.reconciler.client import status_rows
from xgen_declare.processes.state_store import StateStore


@pytest.fixture
def daemon(make_daemon, writer):
    return make_daemon(writer)


def steps(d, clock, n, dt=0.05):
    for _ in range(n):
        d.step()
        clock.advance(dt)


def test_a_failing_pass_neither_stops_the_supervisor_nor_floods_the_log(daemon, clock, monkeypatch, caplog):
    calls = {"pass": 0, "tick": 0}

    def bad_pass(full):
        calls["pass"] += 1
        raise RuntimeError("boom")

    def tick():
        calls["tick"] += 1

    monkeypatch.setattr(daemon, "reconcile", bad_pass)
    monkeypatch.setattr(daemon.sup, "tick", tick)
    steps(daemon, clock, 20)
    assert calls == {"pass": 1, "tick": 20}  # the failed pass waits for the next resync
    assert caplog.text.count("reconcile pass failed") == 1 and caplog.text.count("Traceback") == 1
    clock.advance(60)
    steps(daemon, clock, 1)
    assert calls["pass"] == 2 and caplog.text.count("reconcile pass failed") == 1  # repeats: no new traceback


def test_state_write_failed_is_reported_once_per_pass_until_the_dir_heals(daemon, clock, writer, caplog):
    store = daemon.env.store
    path = store.record_path("m")
    writer.fail(store.models_dir)
    caplog.set_level(logging.INFO, "xgen_declare")
    steps(daemon, clock, 10)
    line = (f"state_write_failed: cannot write {path}: Read-only file system (errno 30 EROFS); supervision goes on "
            "from memory, the records are written again once the state dir is writable")
    assert caplog.text.count("state_write_failed: cannot") == 1 and line in caplog.text
    assert not path.exists() and daemon.sup.procs["m"].state.value == "Stopped"

    # `status` (another process's view: a second StateStore) shows the daemon's state and the failure
    row = status_rows(StateStore(store.root))[0].to_json()
    assert (row["name"], row["state"]) == ("m", "Stopped")
    assert row["state_write_failed"] == f"cannot write {path}: Read-only file system (errno 30 EROFS)"
    metrics = Metrics(store).render().decode()
    assert "xgen_state_write_failures 1.0" in metrics
    assert f'xgen_state_write_failed{{code="EROFS",errno="30",path="{path}"}} 1.0' in metrics

    clock.advance(60)  # the next pass reports it again, once
    steps(daemon, clock, 10)
    assert caplog.text.count("state_write_failed: cannot") == 2

    writer.heal()
    steps(daemon, clock, 30)
    assert json.loads(path.read_text())["state"] == "Stopped"
    assert caplog.text.count("state dir writable again: every record is written") == 1
    assert "state_write_failed" not in store.daemon_info()
    assert status_rows(StateStore(store.root))[0].state_write_failed is None
    assert "xgen_state_write_failures 0.0" in Metrics(store).render().decode()
    assert caplog.text.count("state_write_failed: cannot") == 2

def test_a_part_that_holds_the_loop_is_logged_with_its_name(daemon, clock, monkeypatch, caplog):
    """Only the supervisor's tick takes time on the part timer (a seam: on a loaded machine a real pass
    took longer than any small threshold, and the test failed on 'reconcile pass took')."""
    elapsed = [0.0]

    def slow_tick() -> None:
        elapsed[0] += 2.5

    daemon.part_timer = lambda: elapsed[0]
    monkeypatch.setattr(daemon.sup, "tick", slow_tick)
    caplog.set_level(logging.WARNING)
    steps(daemon, clock, 1)
    assert "slow control loop: supervisor took 2.5s" in caplog.text
    assert "reconcile pass took" not in caplog.text  # the quick parts are not logged


@pytest.mark.parametrize("kind", ["pass", "tick"])
def test_the_daemons_hooks_go_on_after_one_raises_and_may_remove_themselves(daemon, clock, caplog, kind):
    """processes/hooks.py Registry: a pass hook that raises is logged, a tick hook goes through the loop's
    guard; the others run, and one that removes itself runs once."""
    d = daemon
    add, remove = (d.add_pass_hook, d.remove_pass_hook) if kind == "pass" else (d.add_tick_hook, d.remove_tick_hook)
    calls: list[str] = []

    def bad(*args: object) -> None:
        calls.append("bad")
        raise RuntimeError(f"{kind} hook broke")

    def once(*args: object) -> None:
        calls.append("once")
        remove(once)

    add(bad)
    add(once)
    add(once)
    if kind == "pass":
        d.reconcile(True)
        d.reconcile(True)
    else:
        d.step()
        clock.advance(0.05)
        d.step()
    assert calls == ["bad", "once", "bad"]
    assert f"{kind} hook failed" in caplog.text and f"{kind} hook broke" in caplog.text
    remove(bad)
    assert (d.pass_hooks if kind == "pass" else d.tick_hooks).snapshot() == ()
