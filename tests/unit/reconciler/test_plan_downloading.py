"""The planner and a model whose source is not in the store yet (issue 23): Downloading, never started on a
hub spec; a running model keeps serving while the new files download; a fetch failure is Blocked."""

from __future__ import annotations

from xgen_declare.reconciler.plan import BLOCKED, KEEP, RESTART, START, Cause, Request, plan
from xgen_declare.states import State

from .test_plan import seen, want

WAITING = "fetching hf://org/m-GGUF:Q4_K_M: 1.2/4.8 GiB"


def test_a_model_whose_files_are_missing_is_downloading_not_started():
    a = plan({"a": want(downloading=WAITING), "b": want("b")}, {}).get("a")
    assert (a.kind, a.reason, a.cause) == (KEEP, WAITING, Cause.DOWNLOADING)
    assert plan({"a": want(downloading=WAITING), "b": want("b")}, {}).get("b").kind == START


def test_a_running_model_serves_until_the_new_files_are_verified():
    a = plan({"a": want(h="h2", downloading=WAITING)}, {"a": seen()}).get("a")
    assert (a.kind, a.cause) == (KEEP, Cause.DOWNLOADING)
    assert a.reason == WAITING + "; the running process serves until the new files are verified"
    after = plan({"a": want(h="h2")}, {"a": seen()}).get("a")  # fetched: the usual restart
    assert after.kind == RESTART and after.cause == Cause.CHANGED


def test_a_restart_request_restarts_nothing_while_the_files_download():
    a = plan({"a": want(h="h2", downloading=WAITING)}, {"a": seen()}, requests={"a": Request.RESTART}).get("a")
    assert (a.kind, a.cause) == (KEEP, Cause.DOWNLOADING)


def test_files_verified_start_a_downloading_model():
    s = seen(state=State.DOWNLOADING, running=False)
    a = plan({"a": want()}, {"a": s}).get("a")
    assert (a.kind, a.reason) == (START, "source fetched: files verified")


def test_a_fetch_that_retrying_cannot_fix_is_blocked_with_its_reason():
    why = "org/m-GGUF: the hub refused access (HTTP 401); check the token"
    a = plan({"a": want(blocked=why, downloading=None)}, {}).get("a")
    assert (a.kind, a.reason) == (BLOCKED, why)
    running = plan({"a": want(h="h2", blocked=why)}, {"a": seen()}).get("a")
    assert running.kind == BLOCKED and running.reason.endswith("; keeping the running process")


def test_a_hold_stays_while_the_files_download_and_up_releases_it():
    s = seen(state=State.STOPPED, running=False, held=True, held_hash=None)
    a = plan({"a": want(downloading=WAITING)}, {"a": s}).get("a")
    assert (a.kind, a.cause, a.release_hold) == (KEEP, Cause.HELD, False)
    up = plan({"a": want(downloading=WAITING)}, {"a": s}, requests={"a": Request.UP}).get("a")
    assert (up.kind, up.cause, up.release_hold) == (KEEP, Cause.DOWNLOADING, True)
