"""`within`: run a call that might hang (a FIFO, a parser on hostile input) so that a hang fails the test
instead of blocking the suite."""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

__all__ = ["within"]

T = TypeVar("T")


def within(seconds: float, fn: Callable[[], T], what: str = "the call") -> T:
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
    assert not t.is_alive(), f"{what} did not return within {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]
