"""`within(fn)`: run fn in a thread and fail, instead of hanging the suite, when it does not return in
time (a read that blocks on a FIFO). `release` names a FIFO to open for writing on a timeout, so the
blocked reader sees end-of-file and its thread ends."""

from __future__ import annotations

import os
import threading


def within(fn, seconds: float = 5.0, release=None):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if release is not None:
            try:
                os.close(os.open(release, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        raise AssertionError(f"blocked for more than {seconds:g}s")
    if "error" in out:
        raise out["error"]
    return out.get("value")
