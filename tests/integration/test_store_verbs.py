"""`xgen-declare store ls` and `store gc` on a store `pull` filled from the fake hub: which manifests use each
file, revision -> commit, gc of what nothing references (least recently used first, --dry-run), never a
file a recorded running process maps or names, and no gc while a manifest cannot be read."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("huggingface_hub")

from xgen_declare.cli import pull  # noqa: E402
from xgen_declare.processes.state_store import Record, StateStore  # noqa: E402
from xgen_declare.testing.deadline import within  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402

Q4 = os.urandom(300_000)
Q8 = os.urandom(200_000)
REPO = "org/tiny-GGUF"


def manifest(name: str, source, field: str = "source") -> str:
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  {field}: {json.dumps(source)}\n"


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pull, "disk_usage", lambda path: (10**12, 0, 10**12))
    with FakeHub() as h:
        h.add_repo(REPO, {"tiny.Q4_K_M.gguf": Q4, "tiny.Q8_0.gguf": Q8})
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h


@pytest.fixture
def env(cli, hub, write, tmp_path):
    store = tmp_path / "store"
    write("xgen-declare.yaml", json.dumps({"store": {"dir": str(store)}}))

    def verb(*args):
        return within(60, lambda: cli(*args, str(tmp_path / "manifests"), "--state-dir", str(tmp_path / "state")),
                      " ".join(args))
    verb.store = store
    return verb


def blob(store, data: bytes) -> str:
    return str(store / "models--org--tiny-GGUF" / "blobs" / hashlib.sha256(data).hexdigest())


def test_ls_names_users_revision_and_commit(env, hub, write, tmp_path):
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF/tiny.Q4_K_M.gguf"))
    write("c.yaml", manifest("c", "hf://org/tiny-GGUF:Q8_0"))
    assert env("pull").code == 0
    (tmp_path / "manifests" / "c.yaml").unlink()
    r = env("store", "ls")
    assert r.code == 0, r.err
    commit = hub.repos[REPO].refs["main"][:12]
    lines = r.out.splitlines()
    assert lines[0].split() == ["REPO", "REVISION", "FILE", "SIZE", "USED", "BY", "LAST", "USED", "OURS"]
    assert lines[1].split()[:9] == [REPO, "main", "->", commit, "tiny.Q4_K_M.gguf", "293.0", "KiB", "a,", "b"]
    assert lines[2].split()[:8] == [REPO, "main", "->", commit, "tiny.Q8_0.gguf", "195.3", "KiB", "-"]
    assert lines[3] == f"{env.store}: 2 file(s), 488.3 KiB"
    data = json.loads(env("store", "ls", "-o", "json").out)
    q4 = next(d for d in data if d["file"] == "tiny.Q4_K_M.gguf")
    assert q4["used_by"] == ["a", "b"] and q4["revisions"] == ["main"] and q4["size"] == len(Q4)
    assert q4["blob"] == blob(env.store, Q4) and q4["in_use_by"] == [] and q4["ours"] is True
    assert lines[1].split()[-1] == "yes"


def test_gc_removes_what_no_manifest_references_least_recently_used_first(env, hub, write, tmp_path):
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    write("c.yaml", manifest("c", "hf://org/tiny-GGUF:Q8_0"))
    url = hub.add_file("u.gguf", b"u" * 5000)
    write("u.yaml", manifest("u", {"url": url, "sha256": hashlib.sha256(b"u" * 5000).hexdigest()}))
    assert env("pull").code == 0
    os.utime(blob(env.store, Q8), (1_000_000_000, 1_000_000_000))  # Q8 used long ago, the URL file later
    u_blob = env.store / "xgen-urls" / "blobs" / hashlib.sha256(b"u" * 5000).hexdigest()
    os.utime(u_blob, (1_500_000_000, 1_500_000_000))
    (tmp_path / "manifests" / "c.yaml").unlink()
    (tmp_path / "manifests" / "u.yaml").unlink()
    dry = env("store", "gc", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines() == [
        f"would remove {REPO} tiny.Q8_0.gguf (main -> {hub.repos[REPO].refs['main'][:12]}), 195.3 KiB, "
        "last used 2001-09-09 01:46Z",
        f"would remove url u.gguf (sha256 {u_blob.name[:12]}), 4.9 KiB, last used 2017-07-14 02:40Z",
        f"would remove 2 file(s), {len(Q8) + 5000} bytes (200.2 KiB) from {env.store}"]
    assert os.path.exists(blob(env.store, Q8)) and u_blob.exists()
    r = env("store", "gc")
    assert r.code == 0 and r.out.splitlines()[-1] == f"removed 2 file(s), {len(Q8) + 5000} bytes (200.2 KiB) " \
                                                      f"from {env.store}"
    assert not os.path.exists(blob(env.store, Q8)) and not u_blob.exists()
    assert not (env.store / "xgen-urls").exists()  # nothing left there: the directory goes too
    assert open(blob(env.store, Q4), "rb").read() == Q4
    commit = hub.repos[REPO].refs["main"]
    snap = env.store / "models--org--tiny-GGUF" / "snapshots" / commit
    assert sorted(os.listdir(snap)) == ["tiny.Q4_K_M.gguf"]
    assert (env.store / "models--org--tiny-GGUF" / "refs" / "main").read_text() == commit
    assert env("store", "gc").out.splitlines() == [f"removed 0 file(s), 0 bytes (0.0 KiB) from {env.store}"]


MAPPER = ("import mmap, os, sys\n"
          "f = open(os.environ['MODEL'], 'rb')\n"
          "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
          "f.close()\n"
          "print('mapped', flush=True)\n"
          "sys.stdin.read()\n")


def test_gc_never_removes_a_file_a_recorded_process_maps(env, hub, write, tmp_path):
    write("c.yaml", manifest("c", "hf://org/tiny-GGUF:Q8_0"))
    assert env("pull").code == 0
    (tmp_path / "manifests" / "c.yaml").unlink()
    write("a.yaml", manifest("a", "/models/elsewhere.gguf", field="model_path"))
    commit = hub.repos[REPO].refs["main"]
    link = env.store / "models--org--tiny-GGUF" / "snapshots" / commit / "tiny.Q8_0.gguf"
    proc = subprocess.Popen([sys.executable, "-c", MAPPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "MODEL": str(link)}, text=True)  # the path is not in its argv
    try:
        assert within(30, proc.stdout.readline, "the mapper") == "mapped\n"
        StateStore(tmp_path / "state").save(Record(name="c", state="Ready", pid=proc.pid, argv=[sys.executable]))
        r = env("store", "gc")
        assert r.code == 0, r.err
        assert r.out.splitlines() == [f"kept {REPO} tiny.Q8_0.gguf: in use by c (pid {proc.pid})",
                                      f"removed 0 file(s), 0 bytes (0.0 KiB) from {env.store}"]
        assert os.path.exists(blob(env.store, Q8))
        listed = json.loads(env("store", "ls", "-o", "json").out)
        assert listed[0]["in_use_by"] == [f"c (pid {proc.pid})"]
    finally:
        proc.stdin.close()
        proc.wait(10)
    r = env("store", "gc")  # the process is gone: its record no longer protects the file
    assert r.code == 0 and r.out.startswith(f"removed {REPO} tiny.Q8_0.gguf")


def test_gc_keeps_a_repository_a_model_path_names_and_refuses_with_a_broken_manifest(env, hub, write, tmp_path):
    write("c.yaml", manifest("c", "hf://org/tiny-GGUF:Q8_0"))
    assert env("pull").code == 0
    (tmp_path / "manifests" / "c.yaml").unlink()
    write("d.yaml", manifest("d", "org/tiny-GGUF:Q8_0", field="model_path"))  # a hub id: its hf:// source
    r = env("store", "gc")
    assert r.code == 0 and r.out.startswith("removed 0 file(s)")
    write("bad.yaml", "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: x}\nspec:\n  source: [\n")
    (tmp_path / "manifests" / "d.yaml").unlink()
    r = env("store", "gc")
    assert r.code == 1 and os.path.exists(blob(env.store, Q8))
    assert r.err.splitlines()[-1] == ("error: store gc removes nothing while a manifest cannot be read: what it "
                                      "references is unknown; fix the problems above (xgen-declare validate DIR)")


def test_gc_after_a_revision_moves_removes_only_the_old_commits_own_files(env, hub, write, tmp_path):
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF"))  # a GGUF repo named bare: its Q4_K_M file
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF:Q8_0"))
    assert env("pull").code == 0
    old = hub.repos[REPO].refs["main"]
    q8_new = Q8[::-1]
    new = hub.commit(REPO, {"tiny.Q4_K_M.gguf": Q4, "tiny.Q8_0.gguf": q8_new})  # Q4 unchanged, Q8 changed
    assert env("pull", "--update").code == 0  # the models move to the new commit (without --update: their pin)
    listed = {(d["commit"], d["file"]): d for d in json.loads(env("store", "ls", "-o", "json").out)}
    assert listed[(old, "tiny.Q8_0.gguf")]["used_by"] == [] and listed[(new, "tiny.Q8_0.gguf")]["used_by"] == ["b"]
    assert listed[(old, "tiny.Q4_K_M.gguf")]["used_by"] == ["a"]  # one blob, linked from both commits
    r = env("store", "gc")
    assert r.code == 0 and r.out.splitlines()[0].startswith(f"removed {REPO} tiny.Q8_0.gguf (- -> {old[:12]})")
    assert r.out.splitlines()[-1].startswith("removed 1 file(s), 200000 bytes")
    assert not os.path.exists(blob(env.store, Q8)) and open(blob(env.store, q8_new), "rb").read() == q8_new
    snapshots = env.store / "models--org--tiny-GGUF" / "snapshots"
    assert sorted(os.listdir(snapshots / old)) == ["tiny.Q4_K_M.gguf"] and (snapshots / old / "tiny.Q4_K_M.gguf"
                                                                          ).read_bytes() == Q4


def test_pull_marks_a_file_it_finds_in_the_store_as_used(env, hub, write, tmp_path):
    import time
    url = hub.add_file("u.gguf", b"u" * 5000)
    write("u.yaml", manifest("u", {"url": url, "sha256": hashlib.sha256(b"u" * 5000).hexdigest()}))
    assert env("pull").code == 0
    u_blob = env.store / "xgen-urls" / "blobs" / hashlib.sha256(b"u" * 5000).hexdigest()
    os.utime(u_blob, (1_000_000_000, 1_000_000_000))
    before = time.time()
    r = env("pull")
    assert r.code == 0 and "already in the store" in r.out
    assert os.stat(u_blob).st_atime >= before - 1 and os.stat(u_blob).st_mtime == 1_000_000_000
    [row] = json.loads(env("store", "ls", "-o", "json").out)
    assert (row["repo"], row["file"], row["used_by"], row["size"]) == ("url", "u.gguf", ["u"], 5000)


def test_gc_keeps_what_another_tool_downloaded_into_the_store_unless_all(env, hub, write, tmp_path):
    """The default store is the shared HuggingFace cache: a file `hf download` (here: huggingface_hub itself)
    put there is not xgen-declare's; gc keeps it and says so, `store ls` marks it, --all removes it."""
    from huggingface_hub import hf_hub_download
    hub.add_repo("other/theirs-GGUF", {"theirs.gguf": b"t" * 7000})
    theirs = within(30, lambda: hf_hub_download("other/theirs-GGUF", "theirs.gguf", cache_dir=str(env.store),
                                                 endpoint=hub.endpoint), "hf_hub_download")
    write("c.yaml", manifest("c", "hf://org/tiny-GGUF:Q8_0"))
    assert env("pull").code == 0
    from huggingface_hub import scan_cache_dir
    assert scan_cache_dir(env.store).warnings == []  # the ledger under .locks/ is no "corrupted repo" to hf
    (tmp_path / "manifests" / "c.yaml").unlink()
    listed = {d["file"]: d for d in json.loads(env("store", "ls", "-o", "json").out)}
    assert (listed["theirs.gguf"]["ours"], listed["tiny.Q8_0.gguf"]["ours"]) == (False, True)
    text = env("store", "ls").out.splitlines()
    assert [ln.split()[-1] for ln in text[1:3]] == ["yes", "no"]  # org/tiny-GGUF sorts first
    r = env("store", "gc")
    assert r.code == 0, r.err
    commit = hub.repos[REPO].refs["main"][:12]
    assert r.out.splitlines() == [
        f"removed {REPO} tiny.Q8_0.gguf (main -> {commit}), 195.3 KiB, last used "
        f"{r.out.split('last used ')[1][:17]}",
        f"removed 1 file(s), {len(Q8)} bytes (195.3 KiB) from {env.store}",
        "kept 1 file(s), 7000 bytes (6.8 KiB) that xgen-declare did not fetch (other tools' downloads; "
        "store gc --all removes them too)"]
    assert open(theirs, "rb").read() == b"t" * 7000 and not os.path.exists(blob(env.store, Q8))
    ledger = (env.store / ".locks" / "xgen-declare" / "fetched").read_text()
    assert ledger == "", ledger  # the removed blob's line is dropped
    dry = json.loads(env("store", "gc", "--all", "--dry-run", "-o", "json").out)
    assert (dry["all"], [d["files"] for d in dry["removed"]]) == (True, [["theirs.gguf"]])
    r = env("store", "gc", "--all")
    assert r.code == 0 and r.out.splitlines()[-1] == f"removed 1 file(s), 7000 bytes (6.8 KiB) from {env.store}"
    assert not os.path.exists(theirs)


def test_a_blob_fetched_by_another_tool_and_linked_by_pull_stays_theirs(env, hub, write, tmp_path):
    """pull finds the blob in the cache (an earlier `hf download`): it links it, never claims it."""
    from huggingface_hub import hf_hub_download
    within(30, lambda: hf_hub_download(REPO, "tiny.Q8_0.gguf", cache_dir=str(env.store), endpoint=hub.endpoint),
           "hf_hub_download")
    write("c.yaml", manifest("c", "hf://org/tiny-GGUF:Q8_0"))
    assert env("pull").code == 0
    (tmp_path / "manifests" / "c.yaml").unlink()
    r = json.loads(env("store", "gc", "-o", "json").out)
    assert (r["removed"], r["kept_not_ours"]) == ([], {"files": 1, "bytes": len(Q8)})
    assert os.path.exists(blob(env.store, Q8))


# ---- partial downloads (store/partials.py): a download held mid-body by the fake hub, in a `pull` process ----

MIB = 1 << 20
BIG = os.urandom(3 * MIB)
BIG_REPO = "org/big-GGUF"
BIG_SHA = hashlib.sha256(BIG).hexdigest()


def until(pred, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def big(env, hub, write, tmp_path):
    """A 3 MiB file on the hub; the pull runs as its own process (the real disk: store.min_free small)."""
    hub.add_repo(BIG_REPO, {"big.Q8_0.gguf": BIG})
    write("xgen-declare.yaml", json.dumps({"store": {"dir": str(env.store), "min_free": "1MB"}}))

    def pull_process(argv=None) -> subprocess.Popen:
        argv = argv or [sys.executable, "-m", "xgen_declare.cli.main", "pull", str(tmp_path / "manifests"),
                        "--state-dir", str(tmp_path / "state")]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return pull_process


def held_partial(hub, start, hold_path: str, partial, kill: bool):
    """Start the download, wait until the hub holds its body at 2.5 MiB and the first 2 MiB are in `partial`;
    then kill the process (a cancelled download) or leave it running (the caller releases it)."""
    held = hub.hold(hold_path, 2 * MIB + MIB // 2)
    proc = start()
    try:
        assert held.reached.wait(30), "the download never reached the hold"
        until(lambda: partial().exists() and partial().stat().st_size == 2 * MIB, 30, "2 MiB in the partial file")
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    if kill:  # the hold stays: the hub's stop ends it (released, it would count bytes no client reads)
        proc.kill()
        proc.wait(10)
    return proc, held


def big_partial(store):
    return store / "models--org--big-GGUF" / "blobs" / f"{BIG_SHA}.incomplete"


def test_gc_removes_a_partial_download_no_manifest_wants_dry_run_first(env, hub, write, tmp_path, big):
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    assert env("pull").code == 0
    write("c.yaml", manifest("c", "hf://org/big-GGUF:Q8_0"))
    partial = big_partial(env.store)
    held_partial(hub, big, "big.Q8_0.gguf", lambda: partial, kill=True)  # cancelled at 2 of 3 MiB
    ledger = (env.store / ".locks" / "xgen-declare" / "partials").read_text().splitlines()
    assert ledger[-1] == f"models--org--big-GGUF/blobs/{BIG_SHA}.incomplete"  # ours: the fetch noted it
    (tmp_path / "manifests" / "c.yaml").unlink()
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(partial.stat().st_mtime)) + "Z"
    assert env("store", "ls").out.splitlines()[-1] == (  # where the disk went: ls says the partials exist
        f"and 1 partial download(s), 2.0 MiB, the oldest last written {when} (`store gc` removes those no manifest "
        "wants; `doctor` says which resume)")
    dry = env("store", "gc", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines() == [
        f"would remove partial download {BIG_REPO} models--org--big-GGUF/blobs/{BIG_SHA}.incomplete, 2.0 MiB, "
        f"last written {when}",
        f"would remove 0 file(s) and 1 partial download(s), {2 * MIB} bytes (2.0 MiB) from {env.store}"]
    data = json.loads(env("store", "gc", "--dry-run", "-o", "json").out)
    assert (data["bytes"], data["removed"], data["partials_kept"]) == (2 * MIB, [], [])
    assert data["partials_removed"] == [{"repo": BIG_REPO, "path": str(partial), "size": 2 * MIB,
                                         "last_written": when}]
    assert partial.stat().st_size == 2 * MIB  # a dry run removes nothing
    r = json.loads(env("store", "gc", "-o", "json").out)
    assert (r["bytes"], [p["path"] for p in r["partials_removed"]], r["failed"]) == (2 * MIB, [str(partial)], [])
    assert not partial.exists() and open(blob(env.store, Q4), "rb").read() == Q4
    assert (env.store / ".locks" / "xgen-declare" / "fetched").read_text().count("\n") == 1  # Q4's line
    assert (env.store / ".locks" / "xgen-declare" / "partials").read_text() == ""  # removed: its line too
    assert env("store", "gc").out.splitlines() == [f"removed 0 file(s), 0 bytes (0.0 KiB) from {env.store}"]
    assert env("store", "ls").out.splitlines()[-1] == f"{env.store}: 1 file(s), 293.0 KiB"  # no partial left


def test_gc_keeps_the_partial_download_of_a_wanted_source_and_the_next_pull_resumes_it(env, hub, write, tmp_path,
                                                                                       big):
    write("c.yaml", manifest("c", "hf://org/big-GGUF:Q8_0"))
    partial = big_partial(env.store)
    held_partial(hub, big, "big.Q8_0.gguf", lambda: partial, kill=True)
    r = env("store", "gc")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        f"kept partial download {BIG_REPO} models--org--big-GGUF/blobs/{BIG_SHA}.incomplete: wanted by c (the next "
        "fetch resumes it)",
        f"removed 0 file(s), 0 bytes (0.0 KiB) from {env.store}"]
    data = json.loads(env("store", "gc", "-o", "json").out)
    assert data["partials_kept"] == [{"repo": BIG_REPO, "path": str(partial), "size": 2 * MIB,
                                      "why": "wanted by c (the next fetch resumes it)"}]
    served = hub.bytes_served(BIG_REPO, "big.Q8_0.gguf")
    assert env("pull").code == 0
    assert hub.bytes_served(BIG_REPO, "big.Q8_0.gguf") - served == MIB  # resumed: only the last MiB again
    assert [r["range"] for r in hub.requests if r["method"] == "GET" and r["range"]] == [f"bytes={2 * MIB}-"]
    assert open(env.store / "models--org--big-GGUF" / "blobs" / BIG_SHA, "rb").read() == BIG


@pytest.mark.parametrize("kind", ["hf", "url"])
def test_gc_keeps_a_partial_a_running_pull_writes_and_the_pull_completes(env, hub, write, tmp_path, big, kind):
    if kind == "hf":
        write("c.yaml", manifest("c", "hf://org/big-GGUF:Q8_0"))
        partial, hold_path, done = big_partial(env.store), "big.Q8_0.gguf", env.store / "models--org--big-GGUF"
        repo, rel = BIG_REPO, f"models--org--big-GGUF/blobs/{BIG_SHA}.incomplete"
    else:
        write("c.yaml", manifest("c", {"url": hub.add_file("big.gguf", BIG), "sha256": BIG_SHA}))
        partial, hold_path, done = env.store / "xgen-urls" / "blobs" / f"{BIG_SHA}.incomplete", "big.gguf", None
        repo, rel = "url", f"xgen-urls/blobs/{BIG_SHA}.incomplete"
    proc, held = held_partial(hub, big, hold_path, lambda: partial, kill=False)
    try:
        (tmp_path / "manifests" / "c.yaml").unlink()  # no manifest wants it: only the running download keeps it
        for args in (("--dry-run",), ()):
            r = env("store", "gc", *args)
            assert r.code == 0, r.err
            verb = "would remove" if args else "removed"
            assert r.out.splitlines() == [f"kept partial download {repo} {rel}: being downloaded now",
                                          f"{verb} 0 file(s), 0 bytes (0.0 KiB) from {env.store}"]
        data = json.loads(env("store", "gc", "-o", "json").out)
        assert (data["partials_removed"], data["partials_kept"]) == (
            [], [{"repo": repo, "path": str(partial), "size": 2 * MIB, "why": "being downloaded now"}])
        assert partial.stat().st_size == 2 * MIB
    finally:
        held.release.set()
        out = within(60, lambda: proc.communicate(timeout=55)[0], "the held pull")
    assert proc.returncode == 0, out
    final = (done / "blobs" / BIG_SHA) if done else env.store / "xgen-urls" / "blobs" / BIG_SHA
    assert open(final, "rb").read() == BIG and not partial.exists()


HF_DOWNLOAD = ("import sys\nfrom huggingface_hub import hf_hub_download\n"
               "hf_hub_download(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], endpoint=sys.argv[4])\n")


def test_a_huggingface_hub_partial_is_kept_without_all_and_removed_with_all(env, hub, write, tmp_path, big):
    """huggingface_hub (here in its own process, killed mid-body) leaves `<etag>.<8 hex>.incomplete`: not ours,
    never resumed."""
    blobs = env.store / "models--org--big-GGUF" / "blobs"

    def orphan():
        found = sorted(blobs.glob(f"{BIG_SHA}.*.incomplete")) if blobs.is_dir() else []
        return found[0] if found else blobs / "none-yet"
    argv = [sys.executable, "-c", HF_DOWNLOAD, BIG_REPO, "big.Q8_0.gguf", str(env.store), hub.endpoint]
    hub.hold("big.Q8_0.gguf", 2 * MIB + MIB // 2)
    proc = big(argv)
    try:
        until(lambda: hub.faults.holds["big.Q8_0.gguf"].reached.is_set() and orphan().exists(), 30,
              "huggingface_hub's partial file")
    finally:
        proc.kill()
        proc.wait(10)
        hub.faults.holds["big.Q8_0.gguf"].release.set()
    path, size = orphan(), orphan().stat().st_size
    rel = path.relative_to(env.store)
    r = env("store", "gc")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        f"removed 0 file(s), 0 bytes (0.0 KiB) from {env.store}",
        f"kept 1 partial download(s), {size} bytes ({size / 1024:.1f} KiB) that xgen-declare cannot tell it started "
        "(huggingface_hub's, or not in its ledger); store gc --all removes them too, never one a download is "
        "writing"]
    data = json.loads(env("store", "gc", "-o", "json").out)
    assert data["partials_kept_not_ours"] == {"files": 1, "bytes": size} and data["partials_removed"] == []
    assert [p["why"] for p in data["partials_kept"]] == [
        "huggingface_hub's, never resumed: not fetched by xgen-declare"]
    dry = env("store", "gc", "--all", "--dry-run")
    assert dry.out.splitlines()[0].startswith(f"would remove partial download {BIG_REPO} {rel}, ") and path.exists()
    r = env("store", "gc", "--all")
    assert r.code == 0 and r.out.splitlines()[-1] == (f"removed 0 file(s) and 1 partial download(s), {size} bytes "
                                                      f"({size / 1024:.1f} KiB) from {env.store}")
    assert not path.exists()
