"""The backends' keys (spec.api_key_file) are read through the bounded reader on the control loop, never
by a request on the event loop; a FIFO, a device or a huge file is refused at once and that model answers
503 naming the field and the file (issue #21 finding 3)."""

from __future__ import annotations

import asyncio
import os

import pytest

from xgen_declare.testing.deadline import within
from xgen_declare.router.errors import RouterError
from xgen_declare.router.keys import KeyCache
from xgen_declare.router.service import Router
from xgen_declare.router.table import Route, RouteTable


def table(**files) -> RouteTable:
    return RouteTable(routes={name: Route(name, api_key_file=str(path), file=f"/m/{name}.yaml")
                              for name, path in files.items()})


class Ctx:
    """Just what Router.api_key needs (a registry of its own for the router's series)."""

    bus = daemon = token = scrub = env = None

    def __init__(self):
        from types import SimpleNamespace

        from prometheus_client import CollectorRegistry

        self.metrics = SimpleNamespace(registry=CollectorRegistry())


def api_key(router: Router, route: Route):
    return within(5, lambda: asyncio.run(asyncio.wait_for(router.api_key(route), 5)), release=route.api_key_file)


def test_a_fifo_key_file_answers_503_at_once_and_other_keys_still_work(tmp_path):
    fifo, good = tmp_path / "fifo.key", tmp_path / "good.key"
    os.mkfifo(fifo)
    good.write_text("sk-good\n")
    router = Router(Ctx())
    t = table(a=fifo, b=good)
    within(5, lambda: router.keys.refresh(t), release=fifo)  # the control loop's read: refused, not blocked
    with pytest.raises(RouterError) as err:
        api_key(router, t.routes["a"])
    assert err.value.status == 503 and err.value.code == "backend_key_unreadable"
    assert err.value.message == (f"cannot send a's key upstream: spec.api_key_file (in /m/a.yaml): {fifo} is a FIFO "
                                 "(named pipe), not a regular file (point it at a regular file)")
    assert api_key(router, t.routes["b"]) == "sk-good"


def test_a_request_never_opens_a_key_file_the_control_loop_has_read(tmp_path, monkeypatch):
    key = tmp_path / "k"
    key.write_text("sk-1")
    router = Router(Ctx())
    t = table(a=key)
    router.keys.refresh(t)

    def no_open(*a, **kw):
        raise AssertionError("a request opened a file")

    monkeypatch.setattr("xgen_declare.router.keys.read_secret", no_open)
    monkeypatch.setattr("builtins.open", no_open)
    assert api_key(router, t.routes["a"]) == "sk-1"
    router.keys.refresh(t)  # same identity: not read again
    assert api_key(router, t.routes["a"]) == "sk-1"


def test_a_changed_key_file_is_read_again_and_a_swap_to_a_fifo_is_seen(tmp_path):
    key = tmp_path / "k"
    key.write_text("sk-1")
    keys = KeyCache()
    t = table(a=key)
    keys.refresh(t)
    assert keys.cached(str(key)).value == "sk-1"
    key.write_text("sk-2-longer")
    keys.refresh(t)
    assert keys.cached(str(key)).value == "sk-2-longer"
    key.unlink()
    os.mkfifo(key)
    within(5, lambda: keys.refresh(t), release=key)
    assert keys.cached(str(key)).problem == "is a FIFO (named pipe), not a regular file (point it at a regular file)"
    key.unlink()
    keys.refresh(t)
    assert keys.cached(str(key)).problem == "cannot be read: No such file or directory"
    keys.refresh(RouteTable())
    assert keys.cached(str(key)) is None  # routes gone: their keys forgotten


def test_a_huge_or_binary_key_file_is_refused(tmp_path):
    big, binary, empty = tmp_path / "big", tmp_path / "bin", tmp_path / "empty"
    big.write_bytes(b"k" * (64 * 1024 + 1))
    binary.write_bytes(b"\xff\xfe")
    empty.write_text("\n")
    keys = KeyCache()
    keys.refresh(table(a=big, b=binary, c=empty))
    assert keys.cached(str(big)).problem == ("is 65537 bytes; the limit for an API key file is 65536 bytes (use a smaller "
                                             "file)")
    assert keys.cached(str(binary)).problem == "is not UTF-8 text (put the secret in it as text)"
    assert keys.cached(str(empty)).problem is None and keys.cached(str(empty)).value is None


def test_a_route_not_read_yet_is_read_off_the_event_loop(tmp_path):
    key = tmp_path / "k"
    key.write_text("sk-late")
    router = Router(Ctx())
    route = table(a=key).routes["a"]
    assert router.keys.cached(str(key)) is None
    assert api_key(router, route) == "sk-late"
    assert router.keys.cached(str(key)).value == "sk-late"
