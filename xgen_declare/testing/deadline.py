"""`within`: run a call that might hang (a FIFO, a parser on hostile input) so that a hang fails the test
instead of blocking the suite. `release` names a FIFO to open for writing on a timeout, so that a reader
blocked on it (the old code) sees end-of-file and its thread ends."""

from __future__ import annotations

import os
import threading
from typing import Callable, TypeVar

__all__ = ["within"]

T = TypeVar("T")


def within(seconds: float, fn: Callable[[], T], what: str = "the call", release: str | os.PathLike | None = None) -> T:
    """fn() in a daemon thread; AssertionError if it has not returned after `seconds` (a deadline, not a
    timing assertion: it is set far above the expected time). Its exception, if any, is raised here."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True, name="within")
    t.start()
    t.join(seconds)
    if t.is_alive() and release is not None:
        try:
            os.close(os.open(release, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert not t.is_alive(), f"{what} did not return within {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]
