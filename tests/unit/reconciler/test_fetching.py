"""The fetch owner against the fake hub (the real huggingface_hub client): one fetch per source, sources
sharing a file fetch it once, Blocked without a retry loop, network errors retried with back-off, the
commit pinned in the state dir, a look that starts nothing."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

pytest.importorskip("huggingface_hub")

from xgen_declare.config import Store  # noqa: E402
from xgen_declare.manifests.source import parse_source  # noqa: E402
from xgen_declare.reconciler import fetching  # noqa: E402
from xgen_declare.reconciler.fetching import BLOCKED, DONE, FETCHING, RETRYING, Fetcher, pin_path  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402

Q4 = os.urandom(200_000)
REPO = "org/tiny-GGUF"
ROOMY = (10**13, 0, 10**13)


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as h:
        h.add_repo(REPO, {"tiny.Q4_K_M.gguf": Q4, "README.md": b"# tiny\n"})
        yield h


class Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.keys: list[str] = []

    def __call__(self, key: str) -> None:
        self.keys.append(key)
        self.event.set()

    def wait(self, n: int = 1, timeout: float = 20) -> None:
        for _ in range(200):
            if len(self.keys) >= n:
                return
            self.event.wait(timeout / 200)
            self.event.clear()
        raise AssertionError(f"{len(self.keys)} of {n} fetches ended")


def make(hub_or_endpoint, tmp_path, waiter=None, **kw) -> Fetcher:
    endpoint = hub_or_endpoint if isinstance(hub_or_endpoint, str) else hub_or_endpoint.endpoint
    return Fetcher(Store(dir=str(tmp_path / "store")), tmp_path / "store", tmp_path / "state" / "pins",
                   endpoint=endpoint, on_change=waiter, disk_usage=lambda p: ROOMY, **kw)


def test_two_sources_naming_one_file_fetch_it_once_and_are_done(hub, tmp_path):
    w = Waiter()
    f = make(hub, tmp_path, w)
    a, b = parse_source("hf://org/tiny-GGUF:Q4_K_M"), parse_source("hf://org/tiny-GGUF@main/tiny.Q4_K_M.gguf")
    assert f.want(a).phase == FETCHING and f.want(b).phase == FETCHING
    assert f.want(a).phase == FETCHING  # asked again while it runs: no second fetch
    w.wait(2)
    da, db = f.get(a), f.get(b)
    assert (da.phase, db.phase) == (DONE, DONE) and da.path == db.path and open(da.path, "rb").read() == Q4
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == len(Q4)
    assert da.downloaded + db.downloaded == len(Q4) and (da.done, da.total) == (len(Q4), len(Q4))
    assert da.commit == hub.repos[REPO].refs["main"]


def test_a_missing_repo_is_blocked_and_not_fetched_again_soon(hub, tmp_path):
    w = Waiter()
    f = make(hub, tmp_path, w)
    src = parse_source("hf://org/missing-GGUF:Q4_K_M")
    f.want(src)
    w.wait()
    d = f.get(src)
    assert d.phase == BLOCKED and d.text() == ("org/missing-GGUF: the hub has no such repository, or it is private "
                                               "(HTTP 401); check the name, or give a token with access")
    asked = len(hub.requests)
    assert f.want(src) == d and len(hub.requests) == asked and not f.busy()
    f.want(src, token="a-new-token")  # something changed: tried again
    w.wait(2)
    assert len(hub.requests) > asked


def test_a_network_error_retries_with_back_off(tmp_path, monkeypatch):
    monkeypatch.setattr(fetching, "RETRY_BASE", 30.0)
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    w = Waiter()
    f = make(endpoint, tmp_path, w)
    src = parse_source("hf://org/tiny-GGUF:Q4_K_M")
    f.want(src)
    w.wait()
    d = f.get(src)
    assert d.phase == RETRYING and d.retry_in == 30.0 and "worth retrying" in d.error
    assert d.text().startswith("fetching hf://org/tiny-GGUF:Q4_K_M: retrying in 30s after: fetching org/tiny-GGUF")
    assert f.busy()
    f.close(timeout=5)
    assert not f.busy()


def test_the_commit_is_pinned_and_a_moved_main_is_not_followed(hub, tmp_path):
    w = Waiter()
    f = make(hub, tmp_path, w)
    src = parse_source("hf://org/tiny-GGUF:Q4_K_M")
    f.want(src)
    w.wait()
    first = hub.repos[REPO].refs["main"]
    pin = json.loads(pin_path(tmp_path / "state" / "pins", src).read_text())
    assert pin == {"source": "hf://org/tiny-GGUF:Q4_K_M", "revision": "main", "commit": first}
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": os.urandom(1000)})
    asked = len(hub.requests)
    again = make(hub, tmp_path)  # a restarted daemon: found in the store at the pinned commit, no network
    d = again.want(src)
    assert (d.phase, d.commit) == (DONE, first) and len(hub.requests) == asked and not again.busy()
    pin_path(tmp_path / "state" / "pins", src).unlink()  # `pull --update`: the pin goes, main is followed
    w2 = Waiter()
    third = make(hub, tmp_path, w2)
    third.want(parse_source("hf://org/tiny-GGUF@main:Q4_K_M"))  # another source text: not pinned yet
    w2.wait()
    assert third.get(parse_source("hf://org/tiny-GGUF@main:Q4_K_M")).commit == hub.repos[REPO].refs["main"] != first


def test_a_look_in_the_store_starts_nothing(hub, tmp_path):
    f = make(hub, tmp_path, network=False)
    d = f.want(parse_source("hf://org/tiny-GGUF:Q4_K_M"))
    assert (d.phase, d.text()) == (FETCHING, "fetching hf://org/tiny-GGUF:Q4_K_M: not in the store yet")
    assert hub.requests == [] and not f.busy()


def test_a_hub_that_is_down_falls_back_to_what_the_store_holds(hub, tmp_path):
    w = Waiter()
    make(hub, tmp_path, w).want(parse_source("hf://org/tiny-GGUF:Q4_K_M"))  # `pull`: the store's refs/main
    w.wait()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    w2 = Waiter()
    f = Fetcher(Store(dir=str(tmp_path / "store")), tmp_path / "store", None, endpoint=down, on_change=w2,
                disk_usage=lambda p: ROOMY)  # no pins: the branch would be resolved online
    src = parse_source("hf://org/tiny-GGUF@main:Q4_K_M")
    f.want(src)
    w2.wait()
    d = f.get(src)
    assert (d.phase, d.commit) == (DONE, hub.repos[REPO].refs["main"]) and open(d.path, "rb").read() == Q4


def test_the_progress_text_says_done_total_rate_and_eta():
    from xgen_declare.reconciler.fetching import Download
    MiB, GiB = 2**20, 2**30
    d = Download("hf://org/m-GGUF:Q4_K_M", FETCHING, done=int(1.2 * GiB), total=int(4.8 * GiB), rate=52 * MiB)
    assert d.text() == "fetching hf://org/m-GGUF:Q4_K_M: 1.2/4.8 GiB (52.0 MiB/s, ETA 1m11s)"
    assert d.progress() == {"done": int(1.2 * GiB), "total": int(4.8 * GiB), "rate": 52 * MiB}
    small = Download("hf://org/m-GGUF:Q4_K_M", FETCHING, done=10 * MiB, total=24 * MiB)
    assert small.text() == "fetching hf://org/m-GGUF:Q4_K_M: 10.0/24.0 MiB"


# ---- cancelling: a fetch no model wants any more (issue 23) ------------------------------------------------
MiB = 2**20


def until(pred, what: str, timeout: float = 20) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        done.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def big_repo(hub, size: int) -> bytes:
    big = os.urandom(size)
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": Q4, "big.Q8_0.gguf": big})
    return big


def partials(tmp_path) -> list:
    return list((tmp_path / "store" / "models--org--tiny-GGUF" / "blobs").glob("*.incomplete"))


def test_a_fetch_no_model_wants_stops_between_chunks_keeps_its_partial_and_resumes(hub, tmp_path):
    big = big_repo(hub, 40 * MiB)
    hub.faults.rate = 4 * MiB  # after the hold: ~7 s for the rest, so a cut shows as bytes never served
    held = hub.hold("big.Q8_0.gguf", 10 * MiB)  # the cancel is decided while the body waits here
    w = Waiter()
    f = make(hub, tmp_path, w)
    q8, q4 = parse_source("hf://org/tiny-GGUF:Q8_0"), parse_source("hf://org/tiny-GGUF:Q4_K_M")
    f.want(q8)
    assert held.reached.wait(30)
    until(lambda: f.get(q8).done >= 10 * MiB, "the first chunk")
    assert f.cancel_unwanted([q8]) == []                     # still wanted
    assert f.cancel_unwanted([q4]) == ["hf://org/tiny-GGUF:Q8_0"]  # same repository, another file: no need
    assert f.cancel_unwanted([]) == []                       # once
    held.release.set()                                       # its next piece comes: the worker sees the flag
    w.wait()                                                 # the worker ended (a pass is woken)
    assert f.get(q8) is None and not f.busy()
    served = hub.bytes_served(REPO, "big.Q8_0.gguf")
    assert served < 32 * MiB, served                          # stopped at the next piece, the connection closed
    [partial] = partials(tmp_path)
    kept = partial.stat().st_size
    assert 10 * MiB <= kept < len(big) and partial.read_bytes() == big[:kept]
    hub.faults.rate = None
    f.want(q8)                                               # wanted again: resumed with a Range request
    w.wait(2)
    d = f.get(q8)
    assert d.phase == DONE and open(d.path, "rb").read() == big and partials(tmp_path) == []
    ranges = [r["range"] for r in hub.requests if r["method"] == "GET" and r["path"].endswith("big.Q8_0.gguf")]
    assert ranges[-1] == f"bytes={kept}-", ranges
    again = hub.bytes_served(REPO, "big.Q8_0.gguf") - served  # the cut connection's last writes may count late
    assert len(big) - kept <= again <= len(big) - kept + MiB, (again, kept)


def test_a_fetch_another_wanted_source_may_need_goes_on(hub, tmp_path):
    big = big_repo(hub, 12 * MiB)
    hub.faults.rate = 6 * MiB
    w = Waiter()
    f = make(hub, tmp_path, w)
    q8, same_file = parse_source("hf://org/tiny-GGUF:Q8_0"), parse_source("hf://org/tiny-GGUF@main/big.Q8_0.gguf")
    f.want(q8)
    until(lambda: f.get(q8).total > 0, "the download under way")
    f.want(same_file)                                         # waits for the repository's lock
    assert f.cancel_unwanted([same_file]) == []               # the model of q8 is gone, the file is still needed
    w.wait(2)
    assert f.get(q8).phase == DONE and f.get(same_file).phase == DONE
    assert hub.bytes_served(REPO, "big.Q8_0.gguf") == len(big)  # fetched once, never cut


def test_a_fetch_waiting_for_its_repository_is_cancelled_without_a_byte(hub, tmp_path):
    big_repo(hub, 12 * MiB)
    hub.faults.rate = 4 * MiB
    w = Waiter()
    f = make(hub, tmp_path, w)
    q8, q4 = parse_source("hf://org/tiny-GGUF:Q8_0"), parse_source("hf://org/tiny-GGUF@main/tiny.Q4_K_M.gguf")
    f.want(q8)
    until(lambda: f.get(q8).total > 0, "the download under way")
    f.want(q4)
    assert f.cancel_unwanted([q8]) == ["hf://org/tiny-GGUF@main/tiny.Q4_K_M.gguf"]
    w.wait()
    assert w.keys == [fetching.source_key(q4)] and f.get(q4) is None
    assert f.get(q8).phase == FETCHING and hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == 0
    f.close(timeout=10)                                       # closing stops the other at its next chunk
    assert not f.busy()


def test_may_need_rules():
    src = parse_source
    running = src("hf://o/m-GGUF:Q8_0")
    assert fetching._may_need(src("hf://o/m-GGUF@v2/m.Q8_0.gguf"), running, "m.Q8_0.gguf")
    assert fetching._may_need(src("hf://o/m-GGUF@main:q8_0"), running, "m.Q8_0.gguf")
    assert fetching._may_need(src("hf://o/m-GGUF"), running, "m.Q8_0.gguf")          # a whole repository
    assert not fetching._may_need(src("hf://o/m-GGUF:Q4_K_M"), running, "m.Q8_0.gguf")
    assert not fetching._may_need(src("hf://o/m-GGUF:Q8_0"), running, None)          # nothing under way yet
    assert not fetching._may_need(src("hf://o/other-GGUF:Q8_0"), running, "m.Q8_0.gguf")
    url = src({"url": "https://h/x.gguf", "sha256": "a" * 64})
    assert fetching._may_need(url, url, None)
