"""`xgen-declare pull` against the fake hub with the real huggingface_hub client: every source fetched once,
progress lines and JSON lines, the disk preflight before any byte, exit codes 0 / 1 / 8, URL sources with
a token file and resume, offline mode."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

pytest.importorskip("huggingface_hub")

from xgen_declare.cli import pull  # noqa: E402
from xgen_declare.testing.deadline import within  # noqa: E402
from xgen_declare.store.stream import CHUNK as STREAM_CHUNK  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402

Q4 = os.urandom(300_000)
Q8 = os.urandom(200_000)
REPO = "org/tiny-GGUF"


def manifest(name: str, source) -> str:
    src = json.dumps(source)
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  source: {src}\n"


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pull, "disk_usage", lambda path: (10**12, 0, 10**12))
    with FakeHub() as h:
        h.add_repo(REPO, {"tiny.Q4_K_M.gguf": Q4, "tiny.Q8_0.gguf": Q8, "README.md": b"# tiny\n"})
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h


@pytest.fixture
def setup(write, tmp_path):
    def make(**store):
        store.setdefault("dir", str(tmp_path / "store"))
        store.setdefault("min_free", 0)  # the host's disk is not the subject (CI's had 8 % free: 10 % blocked all)
        write("xgen-declare.yaml", json.dumps({"store": store}))
        return tmp_path / "store"
    return make


def run(cli, tmp_path, *args):
    return within(60, lambda: cli("pull", str(tmp_path / "manifests"), "--state-dir", str(tmp_path / "state"),
                                  *args), "pull")


def cdn_gets(hub):
    return [r for r in hub.requests if r["cdn"] and r["method"] == "GET"]


def test_two_models_naming_one_file_fetch_it_once(cli, hub, write, setup, tmp_path):
    store = setup()
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF@main/tiny.Q4_K_M.gguf"))
    write("c.yaml", manifest("c", "hf://org/tiny-GGUF:Q4_K_M"))
    write("local.yaml", manifest("local", "/models/x.gguf"))
    r = run(cli, tmp_path)
    assert r.code == 0, r.err
    commit = hub.repos[REPO].refs["main"]
    path = store / "models--org--tiny-GGUF" / "snapshots" / commit / "tiny.Q4_K_M.gguf"
    assert path.read_bytes() == Q4
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == len(Q4) and len(cdn_gets(hub)) == 1
    lines = r.out.splitlines()
    assert lines[0] == "0.3 MiB to fetch into " + str(store)
    assert lines[1] == "a, c: hf://org/tiny-GGUF:Q4_K_M"
    assert lines[2].startswith("  tiny.Q4_K_M.gguf  0.0/0.3 MiB  ")  # the first progress line at once
    assert "3 file(s)" not in r.out and f"commit {commit[:12]} -> {path}" in lines[3]
    assert lines[3].startswith("  fetched 0.3 MiB in ")
    assert lines[4] == "b: hf://org/tiny-GGUF@main/tiny.Q4_K_M.gguf"
    assert lines[-2] == f"  already in the store: 1 file(s), 0.3 MiB, commit {commit[:12]} -> {path}"
    assert lines[-1] == f"2 of 2 source(s) in the store {store} (3 model(s))"


def test_json_lines_and_only_the_named_model(cli, hub, write, setup, tmp_path):
    setup()
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF:Q8_0"))
    r = run(cli, tmp_path, "--model", "b", "-o", "json")
    assert r.code == 0, r.err
    events = [json.loads(line) for line in r.out.splitlines()]
    assert [e["event"] for e in events] == ["preflight", "progress", "fetched", "done"]
    assert events[0] == {"event": "preflight", "needed": len(Q8), "ok": True}
    assert events[1]["models"] == ["b"] and events[1]["file"] == "tiny.Q8_0.gguf" and events[1]["total"] == len(Q8)
    assert events[2]["files"] == ["tiny.Q8_0.gguf"] and events[2]["fetched_bytes"] == len(Q8)
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == 0
    r = run(cli, tmp_path, "--model", "nope")
    assert r.code == 1 and "--model: no manifest in" in r.err and "names a model 'nope'" in r.err


def test_progress_lines_come_every_period_with_the_rate():
    import io
    t = [0.0]
    out = io.StringIO()
    p = pull.Progress(out, json_lines=False, tty=False, clock=lambda: t[0])
    p.begin(["m"], "hf://o/r:Q4_K_M", "r.Q4_K_M.gguf")
    for second, done in [(0, 0), (1, 2 << 20), (2, 4 << 20), (3, 6 << 20), (4.5, 9 << 20)]:
        t[0] = second
        p.update(done, 10 << 20)
    assert out.getvalue().splitlines() == [
        "  r.Q4_K_M.gguf  0.0/10.0 MiB  0.0 MiB/s",
        "  r.Q4_K_M.gguf  4.0/10.0 MiB  2.0 MiB/s",
        "  r.Q4_K_M.gguf  9.0/10.0 MiB  2.0 MiB/s",
    ]


def test_disk_preflight_refuses_before_any_byte(cli, hub, write, setup, tmp_path, monkeypatch):
    store = setup(min_free="1MB")
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF:Q8_0"))
    monkeypatch.setattr(pull, "disk_usage", lambda path: (10**9, 10**9 - 1_400_000, 1_400_000))
    r = run(cli, tmp_path)
    assert r.code == 9
    assert r.out.splitlines() == [f"error: needs 488 KiB, 1.3 MiB free on {store} (store.min_free 1MB); free space "
                                  "(xgen-declare store gc), lower store.min_free or move store.dir"]
    assert cdn_gets(hub) == []


def test_bad_sources_exit_1_and_fetch_nothing(cli, hub, write, setup, tmp_path):
    setup()
    sha_a, sha_b = "a" * 64, "b" * 64
    url = hub.endpoint + "/files/x.gguf"
    write("a.yaml", manifest("a", {"url": url, "sha256": sha_a}))
    write("b.yaml", manifest("b", {"url": url, "sha256": sha_b}))
    write("c.yaml", manifest("c", "hf://org"))
    r = run(cli, tmp_path)
    assert r.code == 1 and cdn_gets(hub) == [] and r.out == ""
    err = r.err.splitlines()
    assert f"b.yaml:6: spec.source: names the file of {tmp_path}/manifests/a.yaml:6 (a) with another sha256 " \
           f"({sha_b[:16]}, there {sha_a[:16]}) (one file has one checksum" in r.err
    assert any(line.endswith("c.yaml:6: spec.source: 'hf://org' is not a HuggingFace source; write hf://ORG/REPO"
                             "[@REVISION], hf://ORG/REPO-GGUF[@REVISION]/FILE.gguf or hf://ORG/REPO-GGUF[@REVISION]:"
                             "QUANT, e.g. hf://Qwen/Qwen3-0.6B@main (forms: hf://Qwen/Qwen3-0.6B@main, "
                             "hf://org/model-GGUF:Q4_K_M, hf://org/model-GGUF@v1/model.Q4_K_M.gguf, "
                             "{url: https://host/x.gguf, sha256: <64 hex>} or a local path)") for line in err), err


def test_hub_failures_exit_8_and_the_others_are_fetched(cli, hub, write, setup, tmp_path):
    setup()
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF@v9:Q4_K_M"))
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF:Q8_0"))
    r = run(cli, tmp_path)
    assert r.code == 9
    assert f"error: a: hf://org/tiny-GGUF@v9:Q4_K_M ({tmp_path}/manifests/a.yaml:6): org/tiny-GGUF has no " \
           "revision 'v9'; check the branch, tag or commit" in r.out.splitlines()
    assert r.out.splitlines()[-1].endswith("1 of 2 source(s) in the store " + str(tmp_path / "store") +
                                           " (2 model(s)); 1 failed")
    assert hub.bytes_served(REPO, "tiny.Q8_0.gguf") == len(Q8)


BIG = os.urandom(1 << 20) * 24
CHUNK = STREAM_CHUNK  # the store writes in 1 MiB pieces: a connection cut mid-piece resumes from the last whole one


def test_url_source_with_a_token_file_resumes_and_is_verified(cli, hub, write, setup, tmp_path):
    store = setup()
    url = hub.add_file("big.gguf", BIG, token="s3cret-token")
    sha = hashlib.sha256(BIG).hexdigest()
    (tmp_path / "manifests" / "token").write_text("s3cret-token\n")
    write("u.yaml", manifest("u", {"url": url, "sha256": sha, "token_file": "token"}))
    hub.faults.drop_after = {"big.gguf": 15 * CHUNK + CHUNK // 2}  # a dropped connection: resumed within the call
    r = run(cli, tmp_path)
    assert r.code == 0, r.out + r.err
    link = store / "xgen-urls" / "snapshots" / sha / "big.gguf"
    assert link.read_bytes() == BIG and os.path.realpath(link) == str(store / "xgen-urls" / "blobs" / sha)
    gets = [q for q in hub.requests if q["path"] == "/files/big.gguf" and q["method"] == "GET"]
    assert [q["range"] for q in gets] == [None, f"bytes={15 * CHUNK}-"]
    assert {q["auth"] for q in hub.requests if q["path"] == "/files/big.gguf"} == {"Bearer s3cret-token"}
    assert "s3cret" not in r.out + r.err
    again = run(cli, tmp_path)
    assert again.code == 0 and "already in the store" in again.out and len(
        [q for q in hub.requests if q["method"] == "GET"]) == 2


def test_url_token_stays_off_a_redirect_and_a_wrong_checksum_is_deleted(cli, hub, write, setup, tmp_path):
    store = setup()
    url = hub.add_file("x.gguf", Q4)
    (tmp_path / "manifests" / "token").write_text("s3cret-token")
    write("u.yaml", manifest("u", {"url": url, "sha256": "0" * 64, "token_file": "token"}))
    hub.faults.redirect_files = True
    r = run(cli, tmp_path)
    assert r.code == 9
    assert f"{url}: checksum mismatch (sha256 {hashlib.sha256(Q4).hexdigest()[:16]}, the manifest gives " \
           "0000000000000000); the downloaded file was deleted" in r.out
    cdn = [(q["method"], q["auth"]) for q in hub.requests if q["cdn"]]
    assert cdn == [("HEAD", None), ("HEAD", None), ("GET", None)]  # preflight, fetch, body: all on the other origin
    assert list((store / "xgen-urls" / "blobs").iterdir()) == []


def test_unreadable_token_file_and_refusing_server(cli, hub, write, setup, tmp_path):
    setup()
    url = hub.add_file("p.gguf", Q4, token="right")
    write("a.yaml", manifest("a", {"url": url, "sha256": "0" * 64, "token_file": "missing-token"}))
    r = run(cli, tmp_path)
    assert r.code == 1 and f"a.yaml:6: spec.source.token_file: {tmp_path}/manifests/missing-token: cannot be " \
                           "read: No such file or directory (check the path and its permissions)" in r.err
    (tmp_path / "manifests" / "missing-token").write_text("wrong")
    r = run(cli, tmp_path)
    assert r.code == 9 and f"{url}: the server refused access (HTTP 401); check the source's token_file" in r.out


def test_offline_uses_only_the_store_and_says_so(cli, hub, write, setup, tmp_path, monkeypatch):
    store = setup()
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    assert run(cli, tmp_path).code == 0
    n = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = run(cli, tmp_path)
    assert r.code == 0 and len(hub.requests) == n
    assert r.out.splitlines()[0] == f"offline (HF_HUB_OFFLINE): nothing is fetched; using only what the store " \
                                    f"{store} holds"
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF:Q8_0"))
    setup(offline=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    r = run(cli, tmp_path)
    assert r.code == 9 and len(hub.requests) == n and r.out.startswith("offline (store.offline)")
    assert "b: hf://org/tiny-GGUF:Q8_0" in r.out


def test_a_fifo_planted_in_the_store_does_not_hang_a_fetch(cli, hub, write, setup, tmp_path):
    store = setup()
    url = hub.add_file("x.gguf", Q4)
    sha = hashlib.sha256(Q4).hexdigest()
    (store / "xgen-urls" / "blobs").mkdir(parents=True)
    os.mkfifo(store / "xgen-urls" / "blobs" / f"{sha}.incomplete")
    q4 = hashlib.sha256(Q4).hexdigest()
    (store / "models--org--tiny-GGUF" / "blobs").mkdir(parents=True)
    os.mkfifo(store / "models--org--tiny-GGUF" / "blobs" / f"{q4}.incomplete")
    write("u.yaml", manifest("u", {"url": url, "sha256": sha}))
    write("h.yaml", manifest("h", "hf://org/tiny-GGUF:Q4_K_M"))
    r = run(cli, tmp_path)
    assert r.code == 9
    for partial in (store / "xgen-urls" / "blobs" / f"{sha}.incomplete",
                    store / "models--org--tiny-GGUF" / "blobs" / f"{q4}.incomplete"):
        assert f"{partial} is a FIFO (named pipe), not a regular file: the store did not write it; remove it and " \
               "fetch again" in r.out


def test_a_private_repository_with_a_token_file(cli, hub, write, setup, tmp_path):
    store = setup()
    hub.add_repo("org/private-GGUF", {"p.gguf": Q8}, token="hf_good")
    (tmp_path / "manifests" / "hf-token").write_text("hf_good\n")
    write("a.yaml", manifest("a", {"url": "hf://org/private-GGUF/p.gguf", "token_file": "hf-token"}))
    write("b.yaml", manifest("b", "hf://org/private-GGUF/p.gguf"))
    r = run(cli, tmp_path, "--model", "b")
    assert r.code == 9 and "org/private-GGUF: the hub has no such repository, or it is private (HTTP 401); check " \
                           "the name, or give a token with access" in r.out
    r = run(cli, tmp_path, "--model", "a")
    assert r.code == 0, r.out + r.err
    commit = hub.repos["org/private-GGUF"].refs["main"]
    assert (store / "models--org--private-GGUF" / "snapshots" / commit / "p.gguf").read_bytes() == Q8
    hub_auth = {q["auth"] for q in hub.requests if not q["cdn"] and "private" in q["path"]}
    assert "Bearer hf_good" in hub_auth and "hf_good" not in r.out + r.err
    assert {q["auth"] for q in hub.requests if q["cdn"]} == {None}  # the CDN never sees the token


def test_url_partial_left_by_a_killed_pull_is_resumed(cli, hub, write, setup, tmp_path):
    store = setup()
    url = hub.add_file("big.gguf", BIG)
    sha = hashlib.sha256(BIG).hexdigest()
    partial = store / "xgen-urls" / "blobs" / f"{sha}.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(BIG[:7 << 20])  # what a pull killed with -9 leaves: a prefix
    write("u.yaml", manifest("u", {"url": url, "sha256": sha}))
    r = run(cli, tmp_path, "-o", "json")
    assert r.code == 0, r.out + r.err
    events = [json.loads(line) for line in r.out.splitlines()]
    assert events[0] == {"event": "preflight", "needed": len(BIG) - (7 << 20), "ok": True}
    assert events[-2]["fetched_bytes"] == len(BIG) - (7 << 20)
    gets = [q["range"] for q in hub.requests if q["path"] == "/files/big.gguf" and q["method"] == "GET"]
    assert gets == [f"bytes={7 << 20}-"] and hub.bytes_served("files", "big.gguf") == len(BIG) - (7 << 20)
    assert (store / "xgen-urls" / "blobs" / sha).read_bytes() == BIG and not partial.exists()


def test_offline_url_source(cli, hub, write, setup, tmp_path, monkeypatch):
    store = setup()
    url = hub.add_file("x.gguf", Q4)
    sha = hashlib.sha256(Q4).hexdigest()
    write("u.yaml", manifest("u", {"url": url, "sha256": sha}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = run(cli, tmp_path)
    assert r.code == 9 and hub.requests == []
    assert f"offline: {url} (sha256 {sha[:16]}) is not in the store {store}; fetch it once online (xgen-declare " \
           "pull), or turn store.offline / HF_HUB_OFFLINE off" in r.out
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert run(cli, tmp_path).code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(hub.requests)
    r = run(cli, tmp_path)
    assert r.code == 0 and "already in the store" in r.out and len(hub.requests) == n


def test_a_fifo_planted_as_a_blob_is_refused_not_read(cli, hub, write, setup, tmp_path):
    store = setup()
    url = hub.add_file("x.gguf", Q4)
    sha = hashlib.sha256(Q4).hexdigest()
    (store / "xgen-urls" / "blobs").mkdir(parents=True)
    os.mkfifo(store / "xgen-urls" / "blobs" / sha)
    write("u.yaml", manifest("u", {"url": url, "sha256": sha}))
    r = run(cli, tmp_path)
    assert r.code == 9 and f"{store}/xgen-urls/blobs/{sha} is a FIFO (named pipe), not a regular file" in r.out


def test_the_bar_on_a_terminal_is_redrawn_in_place():
    import io
    t = [0.0]
    out = io.StringIO()
    p = pull.Progress(out, json_lines=False, tty=True, clock=lambda: t[0])
    p.begin(["m"], "hf://o/r", "r.gguf")
    p.update(0, 4 << 20)
    t[0] = 1.0
    p.update(2 << 20, 4 << 20)
    p.end_line()
    assert out.getvalue() == ("\r  [..............................]  r.gguf  0.0/4.0 MiB  0.0 MiB/s\x1b[K"
                              "\r  [###############...............]  r.gguf  2.0/4.0 MiB  2.0 MiB/s\x1b[K\n")


def test_a_disk_that_fills_during_a_url_fetch_keeps_the_partial(cli, hub, write, setup, tmp_path, monkeypatch):
    import errno

    from xgen_declare.store import download
    store = setup()
    url = hub.add_file("big.gguf", BIG)
    sha = hashlib.sha256(BIG).hexdigest()
    write("u.yaml", manifest("u", {"url": url, "sha256": sha}))
    real_write = download._HashingFile.write

    def write_until_full(self, chunk):  # the filesystem says ENOSPC once one piece is on it
        if self.fh.tell() + len(chunk) > CHUNK:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, chunk)

    monkeypatch.setattr(download._HashingFile, "write", write_until_full)
    r = run(cli, tmp_path)
    assert r.code == 9 and f"the disk of the store {store} filled while fetching {url} ({CHUNK} bytes kept for " \
                           "resume): free space (xgen-declare store gc) and fetch again" in r.out
    monkeypatch.setattr(download._HashingFile, "write", real_write)
    assert run(cli, tmp_path).code == 0
    gets = [q["range"] for q in hub.requests if q["path"] == "/files/big.gguf" and q["method"] == "GET"]
    assert gets == [None, f"bytes={CHUNK}-"] and (store / "xgen-urls" / "blobs" / sha).read_bytes() == BIG


def test_a_store_that_cannot_be_created_is_said_once_before_any_byte(cli, hub, write, setup, tmp_path):
    store = setup()
    store.write_text("a file where the store directory should be\n")  # fails for root too, unlike chmod
    write("a.yaml", manifest("a", "hf://org/tiny-GGUF:Q4_K_M"))
    write("b.yaml", manifest("b", "hf://org/tiny-GGUF:Q8_0"))
    r = run(cli, tmp_path)
    assert r.code == 9 and cdn_gets(hub) == []
    assert r.out.splitlines() == [f"error: cannot create the store directory {store}: File exists; create it, or "
                                  "set store.dir to a writable directory"]


def test_a_store_entry_in_the_way_is_an_error_naming_it_not_a_crash(cli, hub, write, setup, tmp_path):
    store = setup()
    url = hub.add_file("x.gguf", Q4)
    sha = hashlib.sha256(Q4).hexdigest()
    write("u.yaml", manifest("u", {"url": url, "sha256": sha}))
    assert run(cli, tmp_path).code == 0
    snapshot = store / "xgen-urls" / "snapshots" / sha
    (snapshot / "x.gguf").unlink()
    snapshot.rmdir()
    snapshot.write_text("in the way\n")  # a file where the snapshot directory goes
    r = run(cli, tmp_path)
    assert r.code == 9 and f"the store cannot be written at {snapshot}: File exists; fix its permissions or free " \
                           "space, or set store.dir" in r.out



def test_pull_pins_a_source_not_pinned_yet_and_keeps_a_pin_without_update(cli, hub, write, setup, tmp_path,
                                                                          monkeypatch):
    """The first fetch pins (README "Pinning"), pull's too: `down`, `plan` and the daemon then find the files
    in the store without the hub (a whole repository is found only at a pinned commit). A pin already there
    is kept unless --update; a commit or URL source needs none; offline pull pins nothing (the store's ref
    may be old)."""
    from xgen_declare.manifests.source import parse_source
    from xgen_declare.reconciler.fetching import read_pin
    setup()
    pins = tmp_path / "state" / "pins"
    first = hub.repos[REPO].refs["main"]
    url = hub.add_file("u.gguf", Q8)
    sources = {"w": "hf://org/tiny-GGUF", "q": "hf://org/tiny-GGUF:Q4_K_M", "c": f"hf://org/tiny-GGUF@{first}:Q8_0",
               "u": {"url": url, "sha256": hashlib.sha256(Q8).hexdigest()}}
    for name, src in sources.items():
        write(f"{name}.yaml", manifest(name, src))
    q = parse_source(sources["q"])
    assert run(cli, tmp_path, "--model", "q").code == 0
    assert read_pin(pins, q) == first
    for p in pins.glob("*.json"):
        p.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run(cli, tmp_path, "--model", "q").code == 0  # offline: found at the store's ref, pinned to nothing
    assert list(pins.glob("*.json")) == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert run(cli, tmp_path).code == 0
    assert {name: read_pin(pins, parse_source(src)) for name, src in sources.items()} == \
        {"w": first, "q": first, "c": None, "u": None}
    assert len(list(pins.glob("*.json"))) == 2
    moved = hub.commit(REPO, {"tiny.Q4_K_M.gguf": Q8, "tiny.Q8_0.gguf": Q4})
    served = hub.bytes_served(REPO, "tiny.Q4_K_M.gguf")
    r = run(cli, tmp_path, "--model", "q")  # pinned: fetched at its pin (what the daemon serves), not at main
    assert r.code == 0 and f"already in the store: 1 file(s), 0.3 MiB, commit {first[:12]} ->" in r.out, r.out
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == served and read_pin(pins, q) == first
    r = run(cli, tmp_path, "--model", "q", "--update")
    assert r.code == 0 and f"commit {moved[:12]} ->" in r.out, r.out
    assert read_pin(pins, q) == moved  # (its Q4_K_M is the blob of the old Q8_0: linked, not fetched again)
