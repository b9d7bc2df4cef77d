"""The daemon fetches a model's `source` into the store before it starts it (issue 23): the fake hub (the
real huggingface_hub client against it) and the fake backend. Downloading with progress in `status -o
json`, the backend started on the local file, a 404 / 401 source Blocked while others run, one fetch of a
file two models share, `kill -9` of the daemon mid-download resumed, a full disk Blocked with the partial
file kept, the commit pinned; a model_path naming a hub repository fetched the same way; a fetch no model
wants any more (removed, source changed) cancelled with its partial file kept, one another model needs never."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from xgen_declare.processes.state_store import StateStore  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402
from xgen_declare.tools.tinygguf import write_tiny_gguf  # noqa: E402

from .conftest import FAST  # noqa: E402

REPO = "org/tiny-GGUF"
SMALL = os.urandom(300_000)
MIB = 1024 * 1024


def hub_manifest(name: str, source, **spec) -> str:
    body = {"source": source, "backend": "llama-server-cpu", "ready_timeout": 10, "stop_grace": 2, **spec}
    lines = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in body.items())
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n{lines}\n"


def configure(host, **store) -> Path:
    store.setdefault("dir", str(host.root / "store"))
    store.setdefault("min_free", 0)  # the host's disk is not the subject (CI's had 8 % free: 10 % blocked all)
    b = {"llama-server-cpu": str(host.fake)}
    host.write_config({"binaries": b, "ports": {"start": host.base, "end": host.base + 9},
                       "reconciler": FAST, "store": store})
    return Path(store["dir"])


@pytest.fixture
def hub(host):
    with FakeHub() as h:
        h.add_repo(REPO, {"tiny.Q4_K_M.gguf": SMALL, "README.md": b"# tiny\n"})
        host.env["HF_ENDPOINT"] = h.endpoint
        host.env.pop("HF_HUB_OFFLINE", None)
        yield h


def status_json(host) -> dict[str, dict]:
    r = host.cli("status", "-o", "json")
    assert r.returncode == 0, r.stderr
    return {row["name"]: row for row in json.loads(r.stdout)}


def snapshot_file(store: Path, hub: FakeHub, repo: str, name: str) -> Path:
    commit = hub.repos[repo].refs["main"]
    return store / f"models--{repo.replace('/', '--')}" / "snapshots" / commit / name


def test_a_slow_hub_shows_downloading_with_progress_then_starts_on_the_local_file(host, hub):
    big = os.urandom(24 * MIB)
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": SMALL, "big.Q8_0.gguf": big})
    held = hub.hold("big.Q8_0.gguf", 10 * MIB)  # "while it downloads", however loaded the machine
    store = configure(host)
    host.write("big", hub_manifest("big", "hf://org/tiny-GGUF:Q8_0"))
    host.start_daemon()
    assert held.reached.wait(30)
    seen = host.wait(lambda s: s["big"]["state"] == "Downloading" and s["big"]["download"]["done"] >= 10 * MIB,
                     30, "Downloading with the bytes before the hold done")
    rows = status_json(host)  # the CLI's JSON, as a script reads it
    row = rows["big"]
    assert row["state"] == "Downloading" and row["pid"] is None, row
    assert set(row["download"]) == {"done", "total", "rate"} and row["download"]["total"] == len(big)
    assert 10 * MIB <= row["download"]["done"] < len(big) and row["download"]["rate"] > 0
    assert row["download"]["done"] % MIB == 0  # counted per piece
    assert seen["big"]["download"]["total"] == len(big)
    table = host.cli("status").stdout
    held.release.set()
    ready = host.wait_ready("big", timeout=30)
    assert "download" not in status_json(host)["big"]
    path = snapshot_file(store, hub, REPO, "big.Q8_0.gguf")
    rec = StateStore(host.state).load("big")
    assert path.read_bytes() == big
    assert "--hf-repo" not in rec.argv and str(path) == rec.argv[rec.argv.index("--model") + 1]
    assert rec.downloaded_bytes == len(big) and ready["big"]["pid"]
    assert re.search(r"big +Downloading .* fetching hf://org/tiny-GGUF:Q8_0: [0-9]+\.0/24\.0 MiB \([0-9.]+ MiB/s, "
                     r"ETA [0-9]+s\)\n", table), table
    log = host.daemon_log()
    assert "big: Pending -> Downloading (fetching hf://org/tiny-GGUF:Q8_0" in log
    assert "big: Downloading -> Starting (pid " in log and "apply: start    big: source fetched: files verified" in log
    pins = list((host.state / "pins").glob("*.json"))
    assert [json.loads(p.read_text())["commit"] for p in pins] == [hub.repos[REPO].refs["main"]]


def test_a_404_or_401_source_is_blocked_with_the_reason_and_the_others_run(host, hub):
    hub.add_repo("org/private-GGUF", {"p.Q4_K_M.gguf": SMALL}, token="sekrit")
    configure(host)
    host.write("gone", hub_manifest("gone", "hf://org/missing-GGUF:Q4_K_M"))
    host.write("private", hub_manifest("private", "hf://org/private-GGUF:Q4_K_M"))
    host.write("ok", hub_manifest("ok", "hf://org/tiny-GGUF:Q4_K_M"))
    host.write("local", None, model_path="/models/local.gguf")
    from .test_router import start_router
    base = start_router(host)
    s = host.wait(lambda s: s["ok"]["state"] == "Ready" and s["local"]["state"] == "Ready"
                  and s["gone"]["state"] == "Blocked" and s["private"]["state"] == "Blocked", 30, "blocked + ready")
    assert s["gone"]["last_error"] == ("org/missing-GGUF: the hub has no such repository, or it is private "
                                       "(HTTP 401); check the name, or give a token with access")
    assert s["private"]["last_error"].startswith("org/private-GGUF: the hub has no such repository, or it is "
                                                 "private (HTTP 401)")
    gets = [r for r in hub.requests if r["path"].startswith("/api/models/org/missing-GGUF")]
    host.wait(lambda s: True, 1)  # a pass or two later: no retry loop against the hub
    assert len([r for r in hub.requests if r["path"].startswith("/api/models/org/missing-GGUF")]) == len(gets)
    cli = host.cli("events", "--url", base, "--since", "0", "--timeout", "1")
    assert "gone: download_failed " in cli.stdout and '"retrying": false' in cli.stdout, cli.stdout
    assert "gone: Downloading -> Blocked" in cli.stdout and "ok: download_finished " in cli.stdout


def test_two_models_sharing_one_file_fetch_it_once(host, hub):
    hub.faults.rate = 600_000  # both fetches are under way at once
    store = configure(host)
    host.write("a", hub_manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    host.write("b", hub_manifest("b", "hf://org/tiny-GGUF@main/tiny.Q4_K_M.gguf"))
    host.write("c", hub_manifest("c", "hf://org/tiny-GGUF:Q4_K_M"))
    host.start_daemon()
    host.wait_ready("a", "b", "c", timeout=30)
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == len(SMALL)
    cdn_gets = [r for r in hub.requests if r["cdn"] and r["method"] == "GET"]
    assert len(cdn_gets) == 1
    argv = {n: StateStore(host.state).load(n).argv for n in "abc"}
    paths = {a[a.index("--model") + 1] for a in argv.values()}
    assert len(paths) == 1 and Path(paths.pop()).read_bytes() == SMALL
    ledger = (store / ".locks" / "xgen-declare" / "fetched").read_text()  # the daemon's fetch: gc may remove it
    assert ledger == f"models--org--tiny-GGUF/blobs/{hashlib.sha256(SMALL).hexdigest()}\n"


def test_kill_9_mid_download_resumes_and_a_full_disk_blocks_keeping_the_partial(host, hub):
    big = os.urandom(24 * MIB)
    hub.commit(REPO, {"big.Q8_0.gguf": big})
    held = hub.hold("big.Q8_0.gguf", 10 * MIB)  # never released: the daemon is killed while it waits
    store = configure(host)
    host.write("big", hub_manifest("big", "hf://org/tiny-GGUF:Q8_0"))
    host.start_daemon()
    assert held.reached.wait(30)
    host.wait(lambda s: s["big"]["state"] == "Downloading" and s["big"]["download"]["done"] >= 10 * MIB, 30,
              "10 MiB fetched")
    host.kill_daemon()
    partials = list((store / "models--org--tiny-GGUF" / "blobs").glob("*.incomplete"))
    assert len(partials) == 1 and partials[0].stat().st_size >= 8 * MIB  # what reached the file before the kill
    kept = partials[0].stat().st_size
    before = StateStore(host.state).load("big").downloaded_bytes
    assert 0 < before <= kept
    served = hub.bytes_served(REPO, "big.Q8_0.gguf")

    # a full disk (store.min_free above what is free): Blocked with the preflight's reason, the partial kept
    configure(host, min_free="100000000GiB")
    host.start_daemon()
    s = host.wait(lambda s: s["big"]["state"] == "Blocked", 20, "Blocked by the disk preflight")
    assert s["big"]["last_error"].startswith("needs ") and "(store.min_free 100000000GiB); free space" in \
        s["big"]["last_error"]
    assert partials[0].stat().st_size == kept
    host.kill_daemon()

    configure(host)  # space again: the fetch resumes where the partial file ends
    host.start_daemon()
    host.wait_ready("big", timeout=40)
    resumed = [r for r in hub.requests if r["cdn"] and r["method"] == "GET" and r["range"]]
    assert resumed and resumed[-1]["range"] == f"bytes={kept}-"
    again = hub.bytes_served(REPO, "big.Q8_0.gguf") - served
    assert again == len(big) - kept  # the bytes fetched again: only what the partial file lacked
    assert snapshot_file(store, hub, REPO, "big.Q8_0.gguf").read_bytes() == big
    assert StateStore(host.state).load("big").downloaded_bytes == before + len(big) - kept


def test_a_moved_main_is_not_followed_until_pull_update(host, hub, tmp_path):
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": write_tiny_gguf(tmp_path / "t0.gguf").read_bytes()})
    configure(host)
    host.write("a", hub_manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    host.start_daemon()
    pid = host.wait_ready("a")["a"]["pid"]
    first = StateStore(host.state).load("a").argv
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": write_tiny_gguf(tmp_path / "t1.gguf", seed=1).read_bytes()})  # main moves
    host.kill_daemon()
    host.start_daemon()  # a new daemon: the pin holds, nothing is fetched, the process is adopted
    host.wait(lambda s: s["a"]["state"] == "Ready", 10, "adopted")
    host.wait(lambda s: True, 1.5)
    assert StateStore(host.state).load("a").argv == first and host.status()["a"]["pid"] == pid
    r = host.cli("plan")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "keep     a: unchanged", r.stdout
    r = host.cli("pull", "--update", "--model", "a")  # pins the new commit: the daemon rolls it out
    assert r.returncode == 0, r.stdout + r.stderr
    moved = hub.repos[REPO].refs["main"]
    st = host.wait(lambda s: s["a"]["pid"] not in (None, pid) and s["a"]["state"] == "Ready", 20, "rolled out")
    argv = StateStore(host.state).load("a").argv
    assert f"/snapshots/{moved}/tiny.Q4_K_M.gguf" in argv[argv.index("--model") + 1] and st["a"]["restarts"] == 1


@pytest.mark.parametrize("strategy", ["recreate", "surge"])
def test_a_revision_change_serves_the_old_process_until_the_new_files_are_verified(host, hub, strategy):
    """4 clients stream through the router while a new revision downloads slowly: the old process serves
    (Ready, with the download in status, the API and /metrics), then the rollout swaps: 0 failures."""
    import httpx

    from .test_rollout_drain import SLOW, Clients
    from .test_router import start_router

    v1 = hub.commit(REPO, {"tiny.Q4_K_M.gguf": SMALL})
    hub.tag(REPO, "v1", v1)
    configure(host)
    rollout = {"strategy": strategy, "drain_timeout": "30s"}
    host.write("a", hub_manifest("a", "hf://org/tiny-GGUF@v1:Q4_K_M", env=SLOW, rollout=rollout))
    base = start_router(host)
    old = host.wait_ready("a", timeout=30)["a"]["pid"]
    big = os.urandom(24 * MIB)
    v2 = hub.commit(REPO, {"tiny.Q4_K_M.gguf": big}, branch="v2")
    hub.faults.rate = 6 * MIB
    held = hub.hold("tiny.Q4_K_M.gguf", 4 * MIB)  # status, the API and /metrics are read while it waits here
    clients = Clients(base, "a")
    try:
        host.wait(lambda s: clients.done >= 4, 20, "requests before the edit")
        host.write("a", hub_manifest("a", "hf://org/tiny-GGUF@v2:Q4_K_M", env=SLOW, rollout=rollout))
        s = host.wait(lambda s: s["a"]["download"] is not None and s["a"]["download"]["done"] > 0, 20,
                      "the new revision downloading")
        assert (s["a"]["state"], s["a"]["pid"]) == ("Ready", old)
        detail = httpx.get(base + "/api/management/models/a", timeout=10).json()
        metrics = httpx.get(base + "/metrics", timeout=10).text
        held.release.set()
        st = host.wait(lambda s: s["a"]["pid"] not in (None, old) and s["a"]["state"] == "Ready", 40,
                       "the new revision Ready")
        before = clients.done
        host.wait(lambda s: clients.done >= before + 4, 20, "requests after the rollout")
    finally:
        clients.finish()
    assert clients.failures == []
    assert detail["state"] == "Ready" and detail["pid"] == old, detail
    assert detail["download"]["total"] == len(big) and detail["download"]["text"].startswith(
        "fetching hf://org/tiny-GGUF@v2:Q4_K_M: "), detail
    assert 'xgen_model_download_progress{model="a"}' in metrics
    assert st["a"]["restarts"] == 1
    assert ("a: surge: starting spec " if strategy == "surge" else "a: draining ") in host.daemon_log()
    rec = StateStore(host.state).load("a")
    assert rec.argv[rec.argv.index("--model") + 1] == str(snapshot_file(host.root / "store", hub, REPO,
                                                                        "tiny.Q4_K_M.gguf").parent.parent / v2 /
                                                           "tiny.Q4_K_M.gguf")
    counted = [x for x in httpx.get(base + "/metrics", timeout=10).text.splitlines()
               if x.startswith("xgen_store_bytes_downloaded_total")]
    assert [x.split()[0] for x in counted] == ['xgen_store_bytes_downloaded_total{model="a"}']
    assert float(counted[0].split()[1]) == len(SMALL) + len(big)  # both revisions' files, each fetched once
    cli = host.cli("events", "--url", base, "--since", "0", "--timeout", "1")
    assert "a: download_started " in cli.stdout and "a: download_finished " in cli.stdout, cli.stdout
    assert f'"commit": "{v2}"' in cli.stdout


def test_one_shot_apply_fetches_then_starts(host, hub):
    store = configure(host)
    host.write("a", hub_manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    r = host.cli("apply", str(host.manifests))
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()["a"]
    assert st["state"] == "Ready" and "download" not in st
    argv = StateStore(host.state).load("a").argv
    assert argv[argv.index("--model") + 1] == str(snapshot_file(store, hub, REPO, "tiny.Q4_K_M.gguf"))
    host.cli("down")


def test_a_url_source_is_fetched_checked_and_started_on_its_file(host, hub):
    import hashlib

    store = configure(host)
    url = hub.add_file("x/tiny.gguf", SMALL)
    host.write("u", hub_manifest("u", {"url": url, "sha256": hashlib.sha256(SMALL).hexdigest()}))
    host.write("bad", hub_manifest("bad", {"url": url, "sha256": "0" * 64}))
    host.start_daemon()
    s = host.wait(lambda s: s["u"]["state"] == "Ready" and s["bad"]["state"] == "Blocked", 30, "u Ready, bad Blocked")
    assert "sha256" in s["bad"]["last_error"], s["bad"]
    argv = StateStore(host.state).load("u").argv
    local = Path(argv[argv.index("--model") + 1])
    assert local.parent.parent.parent == store / "xgen-urls" and local.read_bytes() == SMALL


def test_down_of_a_model_whose_new_revision_is_not_fetched_fetches_nothing(host, hub):
    configure(host)
    host.write("a", hub_manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    assert host.cli("apply", str(host.manifests)).returncode == 0
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": os.urandom(1000)}, branch="v2")
    host.write("a", hub_manifest("a", "hf://org/tiny-GGUF@v2:Q4_K_M"))
    asked = len(hub.requests)
    r = host.cli("down", "a")
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()["a"]
    assert len(hub.requests) == asked and (st["state"], st["held"]) == ("Stopped", True)


def test_a_model_path_naming_a_hub_repo_is_fetched_through_the_store(host, hub):
    """issue 23: `model_path: ORG/REPO-GGUF:QUANT` (once llama-server's own --hf-repo download) is the implied
    source hf://ORG/REPO-GGUF:QUANT: validate and render need no network (render previews the hub id and
    names the source), plan says it goes through the store, the daemon fetches it (pinned) and starts
    llama-server on the local file; a repository the hub does not have is Blocked with the reason."""
    store = configure(host)
    host.write("m", None, model_path="org/tiny-GGUF:Q4_K_M")
    host.write("gone", None, model_path="org/missing-GGUF:Q4_K_M")
    asked = len(hub.requests)
    assert host.cli("validate", str(host.manifests)).returncode == 0
    r = host.cli("render", str(host.manifests))
    assert r.returncode == 0, r.stderr
    assert "source of m: hf://org/tiny-GGUF:Q4_K_M (from model_path org/tiny-GGUF:Q4_K_M)" in r.stdout, r.stdout
    assert len(hub.requests) == asked  # no network for validate and render
    r = host.cli("plan", str(host.manifests))
    assert ("store: m: model_path org/tiny-GGUF:Q4_K_M names a hub repository: fetched through the store as "
            "hf://org/tiny-GGUF:Q4_K_M (pinned to a commit by the first fetch), never by the backend") in r.stdout, r.stdout
    weights = [q for q in hub.requests[asked:] if q["path"].endswith(".gguf") and q["method"] == "GET"]
    assert weights and all(q["range"] for q in weights), weights  # plan reads the header (placement), no more
    host.start_daemon()
    s = host.wait(lambda s: s["m"]["state"] == "Ready" and s["gone"]["state"] == "Blocked", 30, "m Ready, gone Blocked")
    assert s["gone"]["last_error"] == ("org/missing-GGUF: the hub has no such repository, or it is private "
                                       "(HTTP 401); check the name, or give a token with access")
    argv = StateStore(host.state).load("m").argv
    assert "--hf-repo" not in argv and argv[argv.index("--model") + 1] == str(
        snapshot_file(store, hub, REPO, "tiny.Q4_K_M.gguf"))
    pins = [json.loads(p.read_text()) for p in (host.state / "pins").glob("*.json")]
    assert pins == [{"source": "hf://org/tiny-GGUF:Q4_K_M", "revision": "main", "commit": hub.repos[REPO].refs["main"]}]
    assert "m: Pending -> Downloading (fetching hf://org/tiny-GGUF:Q4_K_M" in host.daemon_log()


def test_apply_and_up_fetch_a_model_path_hub_repo_then_start_it(host, hub):
    store = configure(host)
    local = str(snapshot_file(store, hub, REPO, "tiny.Q4_K_M.gguf"))
    host.write("m", None, model_path="org/tiny-GGUF")  # a GGUF repository named bare: its Q4_K_M file
    r = host.cli("apply", str(host.manifests))
    assert r.returncode == 0, r.stdout + r.stderr
    argv = StateStore(host.state).load("m").argv
    assert host.status()["m"]["state"] == "Ready" and argv[argv.index("--model") + 1] == local
    assert host.cli("down", "m").returncode == 0
    blob = Path(local).resolve()
    blob.unlink()  # gone from the store: `up` fetches it again before it starts the model
    r = host.cli("up", "m")
    assert r.returncode == 0, r.stdout + r.stderr
    assert host.status()["m"]["state"] == "Ready" and Path(local).read_bytes() == SMALL
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == 2 * len(SMALL)
    host.cli("down")


def partial_files(store: Path) -> list[Path]:
    return list((store / "models--org--tiny-GGUF" / "blobs").glob("*.incomplete"))


def test_removing_or_changing_a_source_mid_download_cancels_its_fetch_and_keeps_the_partial(host, hub):
    """issue 23: a model removed (or whose source changes) while Downloading stops its fetch at the next
    1 MiB piece (store/stream.py's read size; the connection closes); the partial file stays in the store, and the same file resumes
    from it when a model wants it again."""
    big = os.urandom(40 * MIB)
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": SMALL, "big.Q8_0.gguf": big})
    hub.faults.rate = 4 * MIB  # after the hold: ~7 s for the rest, so a cut shows as bytes never served
    held = hub.hold("big.Q8_0.gguf", 10 * MIB)
    store = configure(host)
    host.write("big", hub_manifest("big", "hf://org/tiny-GGUF:Q8_0"))
    host.write("m", hub_manifest("m", "hf://org/tiny-GGUF@main/big.Q8_0.gguf"))  # the same file, written otherwise
    host.start_daemon()
    assert held.reached.wait(30)
    host.wait(lambda s: s["big"]["state"] == "Downloading" and s["big"]["download"]["done"] >= 10 * MIB, 30,
              "the first chunk")
    host.write("m", hub_manifest("m", "hf://org/tiny-GGUF:Q4_K_M"))  # m's source changes: it needs another file
    (host.manifests / "big.yaml").unlink()                            # and big is removed
    host.wait(lambda s: "big" not in s and s["m"]["state"] == "Ready", 30, "big gone, m Ready on Q4_K_M")
    held.release.set()  # the worker, blocked on the held body, gets its next piece and sees the cancel
    host.wait(lambda s: "fetch of hf://org/tiny-GGUF:Q8_0 cancelled" in host.daemon_log(), 20, "the cancel logged")
    served = hub.bytes_served(REPO, "big.Q8_0.gguf")
    assert served < len(big), served                                  # cut before the end
    [partial] = partial_files(store)
    kept = partial.stat().st_size
    assert 10 * MIB <= kept < len(big) and partial.read_bytes() == big[:kept]  # kept for resume
    assert "fetch of hf://org/tiny-GGUF@main/big.Q8_0.gguf cancelled" in host.daemon_log()
    argv = StateStore(host.state).load("m").argv
    assert argv[argv.index("--model") + 1] == str(snapshot_file(store, hub, REPO, "tiny.Q4_K_M.gguf"))
    hub.faults.rate = None
    host.write("big", hub_manifest("big", "hf://org/tiny-GGUF:Q8_0"))  # back: resumed from the partial file
    host.wait_ready("big", timeout=30)
    assert snapshot_file(store, hub, REPO, "big.Q8_0.gguf").read_bytes() == big and partial_files(store) == []
    assert any(r["range"] == f"bytes={kept}-" for r in hub.requests if r["path"].endswith("big.Q8_0.gguf"))


def test_removing_one_of_two_models_sharing_a_file_mid_download_never_cuts_it(host, hub):
    big = os.urandom(24 * MIB)
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": SMALL, "big.Q8_0.gguf": big})
    held = hub.hold("big.Q8_0.gguf", 10 * MIB)  # a is removed while its file is held half-way
    configure(host)
    host.write("a", hub_manifest("a", "hf://org/tiny-GGUF:Q8_0"))
    host.write("b", hub_manifest("b", "hf://org/tiny-GGUF@main/big.Q8_0.gguf"))  # the same file: waits for a's fetch
    host.write("c", hub_manifest("c", "hf://org/tiny-GGUF:Q8_0"))                # a's very source
    host.start_daemon()
    assert held.reached.wait(30)
    host.wait(lambda s: s["a"]["state"] == "Downloading" and s["a"]["download"]["done"] >= 10 * MIB, 30,
              "the first chunk")
    (host.manifests / "a.yaml").unlink()
    host.wait(lambda s: "a" not in s, 20, "a removed")
    assert hub.bytes_served(REPO, "big.Q8_0.gguf") == 10 * MIB  # removed while its file was still downloading
    held.release.set()
    s = host.wait_ready("b", "c", timeout=30)
    assert hub.bytes_served(REPO, "big.Q8_0.gguf") == len(big)  # one fetch, never cut
    assert "cancel" not in host.daemon_log() and s["b"]["pid"] and s["c"]["pid"]
