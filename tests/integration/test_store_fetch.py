"""store.fetch against the fake hub with the real huggingface_hub: a revision resolved to its commit, files
in the HF cache layout, progress, a file shared by two sources fetched once, disk preflight before any
byte, checksum failure, 401/404 Blocked, offline from the store, network errors retryable."""

from __future__ import annotations

import hashlib
import os

import pytest

pytest.importorskip("huggingface_hub")

from xgen_declare.config import Store  # noqa: E402
from xgen_declare.errors import FetchError  # noqa: E402
from xgen_declare.manifests.source import parse_source  # noqa: E402
from xgen_declare.store.fetch import fetch  # noqa: E402
from xgen_declare.store.stream import CHUNK as STREAM_CHUNK  # noqa: E402
from xgen_declare.testing.deadline import within  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402

Q4 = os.urandom(200_000)
Q8 = os.urandom(300_000)
REPO = "org/tiny-GGUF"
ROOMY = lambda path: (10**12, 0, 10**12)  # noqa: E731 - a disk with room (the seam of the preflight)


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the store reads it on each fetch
    with FakeHub() as h:
        h.add_repo(REPO, {"tiny.Q4_K_M.gguf": Q4, "tiny.Q8_0.gguf": Q8, "README.md": b"# tiny\n"})
        h.add_repo("org/tiny-st", {"config.json": b"{}\n", "model.safetensors": Q8, "tokenizer.json": b"{}"})
        yield h


def run(hub, source, store_dir, store=None, **kw):
    kw.setdefault("disk_usage", ROOMY)
    return within(60, lambda: fetch(parse_source(source), store or Store(), store_dir, endpoint=hub.endpoint, **kw),
                  "fetch")


def cdn_gets(hub):
    return [r for r in hub.requests if r["cdn"] and r["method"] == "GET"]


def test_fetch_pins_the_commit_and_reports_progress(hub, tmp_path):
    seen = []
    got = run(hub, "hf://org/tiny-GGUF:Q4_K_M", tmp_path, progress=lambda d, t: seen.append((d, t)))
    commit = hub.repos[REPO].refs["main"]
    assert got.commit == commit and [f.path for f in got.files] == ["tiny.Q4_K_M.gguf"]
    assert got.local_path == tmp_path / "models--org--tiny-GGUF" / "snapshots" / commit / "tiny.Q4_K_M.gguf"
    assert got.local_path.read_bytes() == Q4 and got.fetched_bytes == len(Q4)
    assert seen[0] == (0, len(Q4)) and seen[-1] == (len(Q4), len(Q4))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # fetched once: the second time nothing is downloaded
    again = run(hub, "hf://org/tiny-GGUF:Q4_K_M", tmp_path)
    assert again.fetched_bytes == 0 and again.reused == ("tiny.Q4_K_M.gguf",) and len(cdn_gets(hub)) == 1


def test_two_sources_naming_one_file_fetch_it_once(hub, tmp_path):
    commit = hub.repos[REPO].refs["main"]
    hub.tag(REPO, "v1", commit)
    hub.commit(REPO, {"tiny.Q4_K_M.gguf": Q4, "tiny.Q8_0.gguf": Q8[::-1]})  # main moves; Q4 unchanged
    a = run(hub, "hf://org/tiny-GGUF@v1/tiny.Q4_K_M.gguf", tmp_path)
    b = run(hub, "hf://org/tiny-GGUF@main:Q4_K_M", tmp_path)
    assert a.commit == commit and b.commit != commit
    assert a.local_path.read_bytes() == b.local_path.read_bytes() == Q4
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == len(Q4) and b.fetched_bytes == 0


def test_whole_repository_is_the_snapshot_directory(hub, tmp_path):
    got = run(hub, "hf://org/tiny-st", tmp_path)
    assert got.local_path == got.snapshot and got.local_path.name == hub.repos["org/tiny-st"].refs["main"]
    assert sorted(p.name for p in got.snapshot.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_disk_preflight_blocks_before_any_byte(hub, tmp_path):
    with pytest.raises(FetchError) as err:
        run(hub, "hf://org/tiny-GGUF:Q8_0", tmp_path / "models", Store(min_free="1MB"),
            disk_usage=lambda path: (10**9, 10**9 - 1_200_000, 1_200_000))
    assert err.value.blocked and str(err.value) == (
        f"needs 0.0 GiB, 0.0 GiB free on {tmp_path / 'models'} (store.min_free 1MB); free space "
        "(xgen-declare store gc), lower store.min_free or move store.dir")
    assert cdn_gets(hub) == [] and hub.bytes_served(REPO, "tiny.Q8_0.gguf") == 0


def test_wrong_bytes_fail_the_checksum_and_are_deleted(hub, tmp_path):
    hub.faults.wrong_bytes = {"tiny.Q4_K_M.gguf"}
    with pytest.raises(FetchError) as err:
        run(hub, "hf://org/tiny-GGUF:Q4_K_M", tmp_path)
    commit = hub.repos[REPO].refs["main"]
    want = hashlib.sha256(Q4).hexdigest()
    assert err.value.blocked and str(err.value).startswith(
        f"tiny.Q4_K_M.gguf of {REPO}@{commit[:12]}: checksum mismatch (sha256 ")
    assert f"the hub lists {want[:16]}); the downloaded file was deleted" in str(err.value)
    assert not (tmp_path / "models--org--tiny-GGUF" / "blobs" / want).exists()
    assert not (tmp_path / "models--org--tiny-GGUF" / "snapshots" / commit / "tiny.Q4_K_M.gguf").exists()
    hub.faults.wrong_bytes = set()
    assert run(hub, "hf://org/tiny-GGUF:Q4_K_M", tmp_path).local_path.read_bytes() == Q4


def test_manifest_sha256_is_checked_too(hub, tmp_path):
    source = {"url": "hf://org/tiny-GGUF/tiny.Q4_K_M.gguf", "sha256": "0" * 64}
    with pytest.raises(FetchError, match=r"checksum mismatch \(sha256 .*, the manifest gives 0000000000000000\)"):
        within(60, lambda: fetch(parse_source(source), Store(), tmp_path, endpoint=hub.endpoint, disk_usage=ROOMY))


def test_access_and_missing_things_are_blocked_with_the_reason(hub, tmp_path):
    hub.add_repo("org/private-GGUF", {"p.gguf": Q4}, token="hf_good")
    cases = {
        "hf://org/private-GGUF/p.gguf": "org/private-GGUF: the hub has no such repository, or it is private "
                                        "(HTTP 401); check the name, or give a token with access",
        "hf://org/tiny-GGUF@v9:Q4_K_M": "org/tiny-GGUF has no revision 'v9'; check the branch, tag or commit",
        "hf://org/tiny-GGUF/absent.gguf": f"absent.gguf is not in {REPO} at commit "
                                          f"{hub.repos[REPO].refs['main'][:12]}; check the file name (the hub lists "
                                          "the repository's files) or the revision",
    }
    for source, message in cases.items():
        with pytest.raises(FetchError) as err:
            run(hub, source, tmp_path)
        assert err.value.blocked and str(err.value) == message, source
    got = run(hub, "hf://org/private-GGUF/p.gguf", tmp_path, token="hf_good")
    assert got.local_path.read_bytes() == Q4


def test_offline_uses_only_the_store(hub, tmp_path, monkeypatch):
    online = run(hub, "hf://org/tiny-GGUF:Q4_K_M", tmp_path)
    n = len(hub.requests)
    offline = run(hub, "hf://org/tiny-GGUF:Q4_K_M", tmp_path, Store(offline=True))
    assert (offline.commit, offline.local_path) == (online.commit, online.local_path) and len(hub.requests) == n
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError) as err:
        run(hub, "hf://org/tiny-st", tmp_path)
    assert err.value.blocked and str(err.value) == (
        f"offline: org/tiny-st@main is not in the store {tmp_path}; fetch it once online (xgen-declare pull), or "
        "turn store.offline / HF_HUB_OFFLINE off")


def test_a_hub_that_does_not_answer_is_retryable(tmp_path):
    hub = FakeHub().start()
    endpoint = hub.endpoint
    hub.stop()
    with pytest.raises(FetchError) as err:
        within(60, lambda: fetch(parse_source("hf://org/m"), Store(), tmp_path, endpoint=endpoint, disk_usage=ROOMY))
    assert not err.value.blocked and "(a network or server error: worth retrying; xgen-declare pull resumes)" in str(err.value)


BIG = os.urandom(1 << 20) * 24  # 24 MiB: the store writes what it receives in 1 MiB pieces (store/stream.py)
CHUNK = STREAM_CHUNK
CUT = 15 * CHUNK + CHUNK // 2  # a connection dropped here leaves 15 whole pieces written: the retry asks from there

KILLER = """
import os, sys
from xgen_declare.config import Store
from xgen_declare.manifests.source import parse_source
from xgen_declare.store.fetch import fetch

def progress(done, total):
    if done >= 2 * {chunk}:  # the second piece is counted before it is written: one piece is on disk
        os.kill(os.getpid(), 9)

fetch(parse_source("hf://org/big-GGUF/big.gguf"), Store(), sys.argv[1], endpoint=sys.argv[2], progress=progress,
      disk_usage=lambda p: (10**12, 0, 10**12))
"""


def test_kill_9_mid_download_resumes_with_range(hub, tmp_path):
    import signal
    import subprocess
    import sys
    hub.add_repo("org/big-GGUF", {"big.gguf": BIG})
    out = subprocess.run([sys.executable, "-c", KILLER.format(chunk=CHUNK), str(tmp_path), hub.endpoint],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == -signal.SIGKILL, out.stderr
    sha = hashlib.sha256(BIG).hexdigest()
    partial = tmp_path / "models--org--big-GGUF" / "blobs" / f"{sha}.incomplete"
    assert partial.stat().st_size == CHUNK
    served_before = hub.bytes_served("org/big-GGUF", "big.gguf")
    got = run(hub, "hf://org/big-GGUF/big.gguf", tmp_path)
    assert got.local_path.read_bytes() == BIG and not partial.exists()
    assert [r["range"] for r in cdn_gets(hub)] == [None, f"bytes={CHUNK}-"]
    assert got.fetched_bytes == len(BIG) - CHUNK
    served_twice = hub.bytes_served("org/big-GGUF", "big.gguf") - len(BIG)
    assert served_twice == served_before - CHUNK  # only what was in flight when the process died


def test_an_interrupted_fetch_in_this_process_resumes(hub, tmp_path):
    hub.add_repo("org/big-GGUF", {"big.gguf": BIG})

    def stop(done, total):
        if done >= 2 * CHUNK:
            raise KeyboardInterrupt  # anything that ends the call mid-file: the partial file stays

    with pytest.raises(KeyboardInterrupt):
        run(hub, "hf://org/big-GGUF/big.gguf", tmp_path, progress=stop)
    seen = []
    got = run(hub, "hf://org/big-GGUF/big.gguf", tmp_path, progress=lambda d, t: seen.append(d))
    assert got.local_path.read_bytes() == BIG
    assert [r["range"] for r in cdn_gets(hub)] == [None, f"bytes={CHUNK}-"]
    assert seen[:2] == [0, 2 * CHUNK] and seen[-1] == len(BIG)  # counting from the partial file's piece


def test_a_cut_connection_resumes_within_the_call_and_the_checksum_holds(hub, tmp_path):
    hub.add_repo("org/big-GGUF", {"big.gguf": BIG})
    hub.faults.drop_after = {"big.gguf": CUT}
    got = run(hub, "hf://org/big-GGUF/big.gguf", tmp_path)
    assert got.local_path.read_bytes() == BIG
    assert [r["range"] for r in cdn_gets(hub)] == [None, f"bytes={15 * CHUNK}-"]


def test_a_server_that_ignores_range_still_gives_a_verified_file(hub, tmp_path):
    hub.add_repo("org/big-GGUF", {"big.gguf": BIG})
    hub.faults.drop_after = {"big.gguf": CUT}
    hub.faults.ignore_range = True  # the retry gets 200 and the whole file: the partial is rewound
    got = run(hub, "hf://org/big-GGUF/big.gguf", tmp_path)
    assert got.local_path.read_bytes() == BIG
    assert hub.bytes_served("org/big-GGUF", "big.gguf") == len(BIG) + CUT


def test_a_disk_that_fills_keeps_the_partial_and_blocks_then_resumes(hub, tmp_path, monkeypatch):
    import errno

    from xgen_declare.store import download
    hub.add_repo("org/big-GGUF", {"big.gguf": BIG})
    real_write = download._HashingFile.write
    written = {"n": 0}

    def write(self, chunk):  # the seam: the filesystem says ENOSPC once two pieces are on it
        if written["n"] + len(chunk) > 2 * CHUNK:
            raise OSError(errno.ENOSPC, "No space left on device")
        written["n"] += len(chunk)
        return real_write(self, chunk)

    monkeypatch.setattr(download._HashingFile, "write", write)
    with pytest.raises(FetchError) as err:
        run(hub, "hf://org/big-GGUF/big.gguf", tmp_path)
    assert err.value.blocked and str(err.value) == (
        f"the disk of the store {tmp_path} filled while fetching big.gguf of org/big-GGUF ({2 * CHUNK} bytes "
        "kept for resume): free space (xgen-declare store gc) and fetch again")
    monkeypatch.setattr(download._HashingFile, "write", real_write)
    got = run(hub, "hf://org/big-GGUF/big.gguf", tmp_path)
    assert got.local_path.read_bytes() == BIG and got.fetched_bytes == len(BIG) - 2 * CHUNK
    assert [r["range"] for r in cdn_gets(hub)] == [None, f"bytes={2 * CHUNK}-"]


def test_a_generated_tiny_gguf_fetched_from_the_hub_is_a_readable_model(hub, tmp_path):
    pytest.importorskip("gguf")
    from xgen_declare.placement.gguf_facts import read_gguf_facts
    from xgen_declare.tools.tinygguf import write_tiny_gguf
    made = write_tiny_gguf(tmp_path / "made" / "tiny-f32.gguf")
    hub.add_repo("org/generated-GGUF", {"tiny-f32.gguf": made.read_bytes(), "README.md": b"tiny\n"})
    got = run(hub, "hf://org/generated-GGUF", tmp_path / "store")  # a GGUF repo named bare: its one .gguf
    assert [f.path for f in got.files] == ["tiny-f32.gguf"]
    facts = read_gguf_facts(str(got.local_path))
    assert (facts.architecture, facts.block_count, facts.embedding_length) == ("llama", 2, 64)
