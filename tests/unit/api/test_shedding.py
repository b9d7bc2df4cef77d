"""The pure parts of the API server's load shedding (api/shedding.py): logging once per interval, the
open-files limit and the connection cap kept below it."""

from __future__ import annotations

import logging

import pytest

from xgen_declare.api import shedding
from xgen_declare.api.shedding import OncePerInterval, connection_cap, raise_fd_limit


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_once_per_interval_logs_the_first_and_counts_the_rest(caplog):
    clock = Clock()
    note = OncePerInterval(logging.getLogger("t.once"), interval=60, clock=clock)
    with caplog.at_level(logging.WARNING, "t.once"):
        assert note("a", logging.WARNING, "too many") is True
        assert [note("a", logging.WARNING, "too many") for _ in range(3)] == [False] * 3
        assert note("b", logging.WARNING, "other") is True  # another kind is not held back
        clock.now += 61
        assert note("a", logging.WARNING, "too many") is True
    assert [r.getMessage() for r in caplog.records] == ["too many", "other",
                                                        "too many (3 more like it in the last 61s)"]


def test_once_per_interval_as_a_filter_keys_on_the_template():
    clock = Clock()
    flt = OncePerInterval(interval=10, clock=clock)
    records = [logging.LogRecord("uvicorn.error", logging.WARNING, "f", 1, "Invalid %s", ("x",), None)
               for _ in range(4)]
    assert [flt.filter(r) for r in records[:3]] == [True, False, False]
    clock.now += 10
    assert flt.filter(records[3]) is True
    assert records[3].getMessage() == "Invalid x (2 more like it in the last 10s)"


def test_the_cap_leaves_descriptors_to_the_control_loop(caplog):
    assert connection_cap(256, 65536) == 256
    with caplog.at_level(logging.WARNING, "xgen_declare.api"):
        assert connection_cap(256, 800) == (800 - shedding.FDS_RESERVED - shedding.ACCEPT_BURST) // 2 == 208
    assert caplog.messages == ["api.max_connections 256 lowered to 208: the open-files limit is 800 (ulimit -n) "
                               "and the daemon keeps 256 for itself; raise the limit to allow more"]
    assert connection_cap(256, 1024) == 256
    assert connection_cap(256, 100) == shedding.MIN_CONNECTIONS


@pytest.mark.parametrize("soft, hard, want", [(1024, 4096, 4096), (1024, 1 << 20, 65536), (100000, 1 << 20, 100000)])
def test_the_soft_fd_limit_is_raised_toward_the_hard_one(monkeypatch, soft, hard, want):
    limits = {"now": (soft, hard)}
    monkeypatch.setattr(shedding.resource, "getrlimit", lambda what: limits["now"])
    monkeypatch.setattr(shedding.resource, "setrlimit", lambda what, value: limits.__setitem__("now", value))
    assert raise_fd_limit() == want
    assert limits["now"] == (want, hard)


def test_a_limit_that_cannot_be_raised_is_kept_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(shedding.resource, "getrlimit", lambda what: (1024, 4096))

    def refuse(what, value):
        raise ValueError("not allowed")

    monkeypatch.setattr(shedding.resource, "setrlimit", refuse)
    with caplog.at_level(logging.WARNING, "xgen_declare.api"):
        assert raise_fd_limit() == 1024
    assert caplog.messages == ["cannot raise the open-files limit from 1024 to 4096: not allowed"]


def test_the_server_loops_errors_are_logged_once_per_interval_without_traceback(caplog):
    """accept() failing with EMFILE is reported by asyncio once per try (once a second, with a traceback)."""
    clock = Clock()
    shed = shedding.Shedding(10, 1, 1, note=OncePerInterval(interval=60, clock=clock), clock=clock)
    err = OSError(24, "Too many open files")
    with caplog.at_level(logging.ERROR, "xgen_declare.api"):
        for _ in range(5):
            shed.loop_error(None, {"message": "socket.accept() out of system resource", "exception": err})
            clock.now += 1
        clock.now += 60
        shed.loop_error(None, {"message": "socket.accept() out of system resource", "exception": err})
    assert caplog.messages == [
        "API server: socket.accept() out of system resource: OSError: [Errno 24] Too many open files",
        "API server: socket.accept() out of system resource: OSError: [Errno 24] Too many open files "
        "(4 more like it in the last 65s)"]
    assert all(r.exc_info is None for r in caplog.records)
