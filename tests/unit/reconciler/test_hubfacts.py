"""reconciler/hubfacts.py: the hub's metadata for placement, read off the control loop (issue 23 item 6).
A pass never waits on the hub: the first says "placement unknown (metadata not read yet)", the next one
(woken when the read ends) places the model from the hub's metadata; what was read is kept in the state dir,
so a restarted daemon plans without the hub; offline nothing is read and the plan says so; a failed read
is tried again later, at once with another token; `direct` (the plan verb) is bounded in time."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("gguf")

from xgen_declare.config import Config, Store  # noqa: E402
from xgen_declare.inventory.model import Backend, Gpu, Inventory  # noqa: E402
from xgen_declare.manifests.source import parse_source  # noqa: E402
from xgen_declare.placement.hub import NOT_READ  # noqa: E402
from xgen_declare.reconciler.apply import compute  # noqa: E402
from xgen_declare.reconciler.fetching import Fetcher, write_pin  # noqa: E402
from xgen_declare.reconciler.hubfacts import BACKGROUND, CACHED, DIRECT, OFFLINE, RETRY, HubMetadata  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402
from xgen_declare.tools.tinygguf import write_tiny_gguf  # noqa: E402

SRC = "hf://org/t-GGUF:Q4_K_M"
GPU = [Gpu(index=0, vendor="nvidia", type="nvidia", name="T", memory_total_mib=2048, memory_free_mib=2048)]
HOST = Inventory(gpus=GPU, backends=[Backend(name="llama-server-cuda", available=True, dialect="new")])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.Q4_K_M.gguf").read_bytes()


@pytest.fixture
def hub(monkeypatch, tiny):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as h:
        h.add_repo("org/t-GGUF", {"tiny.Q4_K_M.gguf": tiny})
        yield h


class Woken:
    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, key: str) -> None:
        self.event.set()

    def wait(self) -> None:
        assert self.event.wait(20), "the read never ended"
        self.event.clear()


def meta(hub, tmp_path, mode=BACKGROUND, **kw) -> HubMetadata:
    fetcher = Fetcher(Store(dir=str(tmp_path / "store")), tmp_path / "store", tmp_path / "state" / "pins",
                      endpoint=hub.endpoint, network=False)
    return HubMetadata(tmp_path / "state" / "hubmeta", endpoint=hub.endpoint, pinned=fetcher._pinned, mode=mode,
                       **kw)


def plan_notes(tmp_path, metadata: HubMetadata):
    d = tmp_path / "manifests"
    d.mkdir(exist_ok=True)
    (d / "m.yaml").write_text(f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: m\nspec:\n  source: {SRC}\n"
                              "  backend: llama-server-cuda\n  n_gpu_layers: auto\n")
    fetches = Fetcher(Store(dir=str(tmp_path / "store")), tmp_path / "store", tmp_path / "state" / "pins",
                      network=False)
    fetches.metadata = metadata
    result = compute([str(d)], Config(), HOST, {}, ports_in_use=set, fetches=fetches)
    return result.plan.notes, result.plan.ledger.warnings


def metadata_requests(hub):
    return [r for r in hub.requests if not r["cdn"]]


def test_a_pass_never_waits_and_the_next_one_places_from_the_hub(hub, tmp_path):
    woken = Woken()
    m = meta(hub, tmp_path, on_change=woken)
    t0 = time.monotonic()
    notes, warnings = plan_notes(tmp_path, m)
    assert warnings["m"] == f"placement unknown ({NOT_READ}): {SRC}; n_gpu_layers: auto is left to llama-server's --fit"
    assert time.monotonic() - t0 < 5
    woken.wait()
    notes, warnings = plan_notes(tmp_path, m)
    sha = hub.repos["org/t-GGUF"].refs["main"]
    assert warnings == {} and f"placement: m: placement from hub metadata ({SRC} at commit {sha[:12]}), before its " \
        "files are fetched" in notes
    assert sorted(p.suffix for p in (tmp_path / "state" / "hubmeta").iterdir()) == [".head", ".json", ".ref"]
    hub.stop()  # a restarted daemon: what was read is in the state dir
    again = meta(hub, tmp_path, mode=CACHED).get(parse_source(SRC))
    assert again.reason is None and again.commit == sha and again.facts.block_count == 2


def test_a_pinned_source_is_read_at_its_pin_not_where_the_branch_moved(hub, tmp_path, tiny):
    src = parse_source(SRC)
    first = hub.repos["org/t-GGUF"].refs["main"]
    write_pin(tmp_path / "state" / "pins", src, first)
    hub.commit("org/t-GGUF", {"tiny.Q4_K_M.gguf": tiny[:-1] + b"\1"})
    got = meta(hub, tmp_path, mode=DIRECT).get(src)
    assert got.commit == first and got.reason is None


def test_offline_reads_nothing_and_says_so(hub, tmp_path):
    got = meta(hub, tmp_path, offline=True).get(parse_source(SRC))
    assert got.reason == OFFLINE and hub.requests == []
    notes, warnings = plan_notes(tmp_path, meta(hub, tmp_path, offline=True))
    assert warnings["m"].startswith(f"placement unknown ({OFFLINE}): {SRC}")


def test_a_failed_read_waits_before_the_next_try_unless_the_token_changes(hub, tmp_path):
    hub.repos["org/t-GGUF"].token = "right"
    now = [1000.0]
    woken = Woken()
    m = meta(hub, tmp_path, on_change=woken, clock=lambda: now[0])
    src = parse_source(SRC)
    assert m.get(src, "wrong").reason == NOT_READ
    woken.wait()
    failed = m.get(src, "wrong")
    assert failed.reason.startswith(f"{NOT_READ}: org/t-GGUF") and "HTTP 401" in failed.reason
    asked = len(metadata_requests(hub))
    now[0] += RETRY - 1
    assert m.get(src, "wrong").reason == failed.reason and len(metadata_requests(hub)) == asked
    assert m.get(src, "right").reason == NOT_READ  # another token: read again now
    woken.wait()
    assert m.get(src, "right").facts is not None


def test_direct_reads_within_its_timeout(hub, tmp_path):
    hub.faults.rate = 2000  # bytes/s: the 1 MiB first read would take minutes
    t0 = time.monotonic()
    got = meta(hub, tmp_path, mode=DIRECT, timeout=1.0).get(parse_source(SRC))
    assert time.monotonic() - t0 < 4
    assert got.facts is None and got.reason == f"{NOT_READ}: reading tiny.Q4_K_M.gguf of org/t-GGUF from the hub " \
        "took too long (timed out)"


def test_the_daemon_reads_the_header_only_for_a_download_worth_it(hub, tmp_path):
    from xgen_declare.manifests.load import load_paths
    from xgen_declare.reconciler.apply import SourceFiles
    from xgen_declare.reconciler.fetching import FETCHING, Download
    from xgen_declare.reconciler.hubfacts import WORTH

    woken = Woken()

    class Fetches:  # the daemon's fetch owner as SourceFiles sees it: its fetch of the source, and `metadata`
        metadata = meta(hub, tmp_path, on_change=woken)
        total = 0
        network = True

        def get(self, source):
            return Download(SRC, FETCHING, total=self.total)

        def stored(self, source):  # the store holds nothing of it
            return None

    plan_notes(tmp_path, Fetches.metadata)  # writes the manifest; this pass has no fetch of it: read
    woken.wait()
    hub.requests.clear()
    (tmp_path / "state" / "hubmeta").rename(tmp_path / "kept")  # nothing kept: a fresh state dir
    decl = load_paths([str(tmp_path / "manifests")]).models[0]
    fetches = Fetches()
    fetches.metadata = meta(hub, tmp_path, on_change=woken)
    sources = SourceFiles(fetches)
    for total in (0, 300_000, WORTH - 1):  # not known yet, or small: its files are there soon
        fetches.total = total
        assert sources.hub_facts(decl).reason == NOT_READ
    assert hub.requests == []
    fetches.total = WORTH  # a large download: its header is read meanwhile
    assert sources.hub_facts(decl).reason == NOT_READ
    woken.wait()
    assert sources.hub_facts(decl).facts is not None and hub.requests


def test_a_url_source_is_placed_from_its_header_before_the_fetch_and_kept_by_sha256(hub, tmp_path, tiny):
    import hashlib
    import json
    url = hub.add_file("u/tiny.gguf", tiny)
    sha = hashlib.sha256(tiny).hexdigest()
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "u.yaml").write_text("apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: u\nspec:\n  source: "
                              f"{json.dumps({'url': url, 'sha256': sha})}\n  backend: llama-server-cuda\n"
                              "  n_gpu_layers: auto\n")
    woken = Woken()
    fetches = Fetcher(Store(dir=str(tmp_path / "store")), tmp_path / "store", tmp_path / "state" / "pins",
                      network=False)
    fetches.metadata = meta(hub, tmp_path, on_change=woken)
    first = compute([str(d)], Config(), HOST, {}, ports_in_use=set, fetches=fetches).plan
    assert first.ledger.warnings["u"] == f"placement unknown ({NOT_READ}): {url}; n_gpu_layers: auto is left to " \
        "llama-server's --fit"
    woken.wait()
    again = compute([str(d)], Config(), HOST, {}, ports_in_use=set, fetches=fetches).plan
    assert again.ledger.warnings == {}
    assert f"placement: u: placement from the GGUF header read over HTTP ({url}, sha256 {sha[:12]}), before its " \
        "file is fetched" in again.notes
    assert [r["method"] for r in hub.requests if r["path"] == "/files/u/tiny.gguf"][0] == "HEAD"
    assert sorted(p.suffix for p in (tmp_path / "state" / "hubmeta").iterdir()) == [".head", ".json"]
    hub.stop()  # a restarted daemon: kept by URL and sha256
    kept = meta(hub, tmp_path, mode=CACHED).get(parse_source({"url": url, "sha256": sha}))
    assert kept.reason is None and kept.commit == sha and kept.facts.block_count == 2
    assert meta(hub, tmp_path, offline=True).get(parse_source({"url": url, "sha256": "0" * 64})).reason == OFFLINE


def test_a_branch_the_store_holds_is_placed_from_its_files_while_its_fetch_resolves_it(hub, tmp_path, tiny):
    """The store holds the source at its ref but nothing pinned it (`hf download`): the daemon's first pass
    waits for the fetch to resolve the branch on the hub, and places the model from the files meanwhile (the
    hub's metadata is not read); a file there that is no usable GGUF leaves it to the hub's metadata."""
    from xgen_declare.reconciler.hubfacts import stored_facts
    from xgen_declare.store.fetch import fetch
    store = Store(dir=str(tmp_path / "store"), min_free=0)  # the host's disk is not the subject
    got = fetch(parse_source(SRC), store, tmp_path / "store", endpoint=hub.endpoint)  # a ref, no pin
    held = hub.hold("tiny.Q4_K_M.gguf", 0)  # a fetch that would download is held: this one resolves only
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "m.yaml").write_text(f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: m\nspec:\n  source: {SRC}\n"
                              "  backend: llama-server-cuda\n  n_gpu_layers: auto\n")
    fetches = Fetcher(store, tmp_path / "store", tmp_path / "state" / "pins", endpoint=hub.endpoint, network=True)
    fetches.metadata = meta(hub, tmp_path)
    try:
        result = compute([str(d)], Config(), HOST, {}, ports_in_use=set, fetches=fetches)
    finally:
        fetches.close(timeout=5)
    assert "m" in result.fetching and result.plan.ledger.warnings == {}
    assert f"placement: m: placement from the files the store holds ({SRC} at commit {got.commit[:12]}) while its " \
        "fetch asks the hub for the branch's commit" in result.plan.notes
    assert not held.reached.is_set() and not [r for r in hub.requests if r["cdn"] and r["range"]]  # no header read
    assert stored_facts(parse_source(SRC), None) is None
    got.paths[0].resolve().write_bytes(b"not a gguf")
    assert stored_facts(parse_source(SRC), got) is None
