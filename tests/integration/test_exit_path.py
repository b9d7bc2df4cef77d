"""A backend killed with `kill -9` whose end the reconcile pass sees before the supervisor's tick (#21
finding 22): real processes, the daemon driven in-process so the test decides the order (the pass first,
as a SIGHUP right after the kill does; a seam, not a sleep). The fake backend leaves a helper in its
process group without the owner tag (only a kill of the group reaches it), a tagged grandchild in the
group and a setsid escapee carrying the tag. Whoever notices the exit, all three die before anything
starts again, and the restart honours the back-off: at once after a Ready run, then backoff_base."""

from __future__ import annotations

import os
import signal
import time

import pytest

from xgen_declare.config import load_config
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.daemon import Daemon
from xgen_declare.reconciler.env import Env
from xgen_declare.states import State
from xgen_declare.testing.harness import kill_pids

from .conftest import alive

BASE = 30.0  # backoff_base: long enough that "not restarted yet" is not a race with the clock
HELPERS = ("untagged", "grandchild", "escapee")


def until(pred, timeout: float, what: str, step=None):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if step is not None:
            step()
        time.sleep(0.02)


def zombie(pid: int) -> bool:
    """Dead, reapable and not reaped yet: nobody (in this process: the supervisor's poll) has noticed.
    waitid(WNOWAIT) asks the kernel without reaping. /proc's 'Z' is not enough: a killed multithreaded
    process (the fake backend serves from threads) shows its leader as 'Z' while its other threads still
    exit, and waitpid() does not report it until the last one is gone; a pass run in that window sees a
    running process (CI, under load: the helpers were not killed because the exit was not there yet)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False


@pytest.fixture
def seen_pids():
    """Every helper pid a test saw: killed at the end whatever happened (a helper the code under test
    left alive is no longer named by a pid file once the next run wrote its own)."""
    pids: list[int] = []
    yield pids
    kill_pids(pids)


@pytest.fixture
def daemon(host, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(host.root / "cache"))
    monkeypatch.delenv("XGEN_CONFIG", raising=False)
    host.config(backoff_base=BASE, backoff_max=4 * BASE, backoff_reset=600)
    host.write("m", env={"FAKE_MODE": "untagged_child,grandchild,setsid", "FAKE_PIDDIR": str(host.pids)})
    paths = [str(host.manifests)]
    d = Daemon(Env(load_config(None, paths), StateStore(host.state), paths, None))
    d.start()
    try:
        yield d
    finally:
        d.sup.stop_all("test over")
        until(lambda: not d.sup.busy(), 10, "the model stopped", d.sup.tick)
        d.shutdown()


def serving(host, d, seen: list[int]) -> tuple[int, dict[str, int]]:
    """Step the daemon until m is Ready and its helpers are up; its pid and the helpers' pids."""
    for role in HELPERS:
        (host.pids / f"m.{role}.pid").unlink(missing_ok=True)
    until(lambda: "m" in d.sup.procs and d.sup.procs["m"].state == State.READY
          and all((host.pids / f"m.{r}.pid").exists() for r in HELPERS), 20, "m Ready", d.step)
    helpers = {r: host.fake_pid("m", r) for r in HELPERS}
    seen.extend(helpers.values())
    assert all(alive(pid) for pid in helpers.values())
    assert os.getpgid(helpers["untagged"]) == d.sup.procs["m"].rec.pid  # in the group, without the tag
    return d.sup.procs["m"].rec.pid, helpers


def killed_and_seen_by_the_pass_first(d, pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    until(lambda: zombie(pid), 5, f"pid {pid} dead and unreaped")
    d.reconcile(False)  # the pass first (as SIGHUP at once): the supervisor's tick has not run


def test_kill_9_seen_first_by_the_pass_kills_the_group_and_escapee_and_honours_the_back_off(host, daemon, seen_pids):
    d = daemon
    pid, helpers = serving(host, d, seen_pids)
    killed_and_seen_by_the_pass_first(d, pid)
    until(lambda: not any(alive(h) for h in helpers.values()), 5, "the helpers and the escapee gone")
    p = d.sup.procs["m"]
    assert p.state == State.CRASH_LOOP_BACK_OFF and p.rec.pid is None  # the pass started nothing itself
    assert p.rec.last_error.startswith("killed by signal 9")
    d.sup.tick()  # the first crash after a Ready run: restarted at once, counted
    assert p.state == State.STARTING and p.rec.pid not in (None, pid) and p.rec.restarts == 1

    pid2, helpers2 = serving(host, d, seen_pids)
    killed_and_seen_by_the_pass_first(d, pid2)
    until(lambda: not any(alive(h) for h in helpers2.values()), 5, "the second run's helpers gone")
    assert p.state == State.CRASH_LOOP_BACK_OFF and BASE - 5 < p.next_start_at - d.clock() <= BASE
    d.step()  # neither the tick nor another pass starts it before the back-off elapsed
    assert p.state == State.CRASH_LOOP_BACK_OFF and p.rec.restarts == 1
    assert p.rec.last_error.endswith(f"(restarting in {BASE:g}s)")
