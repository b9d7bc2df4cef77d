"""`store gc` while the daemon fetches (issue 23's partial downloads): the fetch worker runs in the daemon
process and holds the blob's lock, so gc keeps the partial file it writes even when no manifest wants it any
more; once the daemon has cancelled that fetch (the model removed), the next gc removes the partial."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

pytest.importorskip("huggingface_hub")

from . import test_store_daemon as store_daemon  # noqa: E402
from .test_store_daemon import MIB, configure, hub_manifest  # noqa: E402

hub = store_daemon.hub  # the fixture: a fake hub with org/tiny-GGUF, HF_ENDPOINT set for the host

BIG_REPO = "org/big-GGUF"


def test_gc_keeps_the_partial_a_daemon_fetch_writes_and_removes_it_once_the_fetch_is_cancelled(host, hub):
    big = os.urandom(24 * MIB)
    hub.add_repo(BIG_REPO, {"big.Q8_0.gguf": big})
    hub.faults.rate = 4 * MIB  # after the hold: the cancel comes long before the end
    held = hub.hold("big.Q8_0.gguf", 10 * MIB)
    store = configure(host)
    host.write("big", hub_manifest("big", "hf://org/big-GGUF:Q8_0"))
    host.write("m", hub_manifest("m", "hf://org/tiny-GGUF:Q4_K_M"))  # another repository: never an empty dir
    host.start_daemon()
    assert held.reached.wait(30)
    host.wait(lambda s: s["big"]["state"] == "Downloading" and s["big"]["download"]["done"] >= 10 * MIB, 30,
              "the first 10 MiB")
    (host.manifests / "big.yaml").unlink()  # no manifest wants it: only the running fetch keeps its partial
    host.wait(lambda s: "big" not in s and s["m"]["state"] == "Ready", 30, "big removed, m Ready")
    partial = store / "models--org--big-GGUF" / "blobs" / f"{hashlib.sha256(big).hexdigest()}.incomplete"
    try:
        r = host.cli("store", "gc", "-o", "json")
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["partials_removed"] == [] and data["bytes"] == 0
        assert data["partials_kept"] == [{"repo": BIG_REPO, "path": str(partial), "size": partial.stat().st_size,
                                          "why": "being downloaded now"}]
    finally:
        held.release.set()  # the worker gets its next piece and sees the cancel
    host.wait(lambda s: "fetch of hf://org/big-GGUF:Q8_0 cancelled" in host.daemon_log(), 20, "the cancel logged")
    kept = partial.stat().st_size
    assert 10 * MIB <= kept < len(big)
    r = host.cli("store", "gc")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == (f"removed 0 file(s) and 1 partial download(s), {kept} bytes "
                                         f"({kept / MIB:.1f} MiB) from {store}")
    assert not partial.exists()
