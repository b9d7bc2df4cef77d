"""The one registry of hooks and event sinks (processes/hooks.py), and the supervisor's event sinks over it
(core.Hooks): one that raises is logged and the others still run; one that removes itself runs this round
and not the next; adds and removes from other threads while the loop calls them lose nothing. The daemon's
pass and tick hooks: tests/unit/reconciler/test_daemon_step.py; the git source's sinks: test_gitpoll.py."""

from __future__ import annotations

import logging
import threading

from xgen_declare.processes.core import Hooks
from xgen_declare.processes.hooks import Registry


def test_a_hook_is_registered_once_and_removing_an_absent_one_is_no_error():
    reg: Registry = Registry("test hook")
    calls: list[str] = []

    def a(x: str) -> None:
        calls.append("a" + x)

    def b(x: str) -> None:
        calls.append("b" + x)

    reg.add(a)
    reg.add(b)
    reg.add(a)
    assert reg.snapshot() == (a, b) and len(reg) == 2 and a in reg
    reg.call("1")
    assert calls == ["a1", "b1"]
    reg.remove(a)
    reg.remove(a)
    assert reg.snapshot() == (b,) and a not in reg


def test_a_hook_that_raises_is_logged_and_the_others_still_run(caplog):
    reg: Registry = Registry("test hook", logging.getLogger("xgen_declare.test"))
    calls: list[str] = []

    def bad(x: int) -> None:
        raise RuntimeError("boom")

    reg.add(bad)
    reg.add(lambda x: calls.append(f"after {x}"))
    reg.call(7)
    assert calls == ["after 7"]
    [rec] = [r for r in caplog.records if r.name == "xgen_declare.test"]
    assert rec.getMessage() == "test hook failed" and rec.exc_info and "boom" in caplog.text


def test_a_hook_that_removes_itself_runs_this_round_and_not_the_next():
    reg: Registry = Registry("test hook")
    calls: list[str] = []

    def once() -> None:
        calls.append("once")
        reg.remove(once)
        reg.add(later)

    def later() -> None:
        calls.append("later")

    def other() -> None:
        calls.append("other")

    reg.add(once)
    reg.add(other)
    reg.call()
    assert calls == ["once", "other"]  # `later`, added during the round, waits for the next one
    reg.call()
    assert calls == ["once", "other", "other", "later"]


def test_adds_and_removes_from_other_threads_while_the_loop_calls_lose_nothing():
    reg: Registry = Registry("test hook")
    keep = [lambda n=n: None for n in range(50)]
    churn = [lambda n=n: None for n in range(50)]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            reg.call()

    caller = threading.Thread(target=loop)
    caller.start()
    try:
        def worker(fns: list) -> None:
            for fn in fns:
                reg.add(fn)
            for fn in fns[::2]:
                reg.remove(fn)

        threads = [threading.Thread(target=worker, args=(fns,)) for fns in (keep, churn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
    finally:
        stop.set()
        caller.join(10)
    assert not caller.is_alive()
    assert set(reg.snapshot()) == set(keep[1::2]) | set(churn[1::2])


def test_the_supervisors_event_sinks_go_on_after_one_raises(caplog):
    hooks = Hooks()
    got: list[tuple[str, dict]] = []

    def bad(type_: str, **data: object) -> None:
        raise ValueError("sink broke")

    hooks.register_events(bad)
    hooks.register_events(lambda type_, **data: got.append((type_, data)))
    hooks.event("rollout_started", model="m", from_hash="a", to_hash="b")
    assert got == [("rollout_started", {"model": "m", "from_hash": "a", "to_hash": "b"})]
    assert "event sink failed" in caplog.text and "sink broke" in caplog.text
    hooks.unregister_events(bad)
    hooks.unregister_events(bad)
    caplog.clear()
    hooks.event("rolled_back", model="m")
    assert got[-1] == ("rolled_back", {"model": "m"}) and "failed" not in caplog.text
