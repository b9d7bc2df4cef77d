"""The fake Hub (xgen_declare/testing/fakehub.py) against the real `huggingface_hub` client: model_info,
hf_hub_download and snapshot_download work unchanged; a cut connection resumes with Range; wrong bytes are
caught by the Hub's checksums; 401/403/404 raise the client's own error classes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

hf = pytest.importorskip("huggingface_hub")
from huggingface_hub import HfApi, hf_hub_download, snapshot_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from xgen_declare.testing.deadline import within  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub, git_blob_sha  # noqa: E402

WEIGHTS = bytes(range(256)) * 1024  # 256 KiB, LFS (.gguf)
CONFIG = b'{"architectures": ["LlamaForCausalLM"]}\n'
REPO = "org/tiny-GGUF"


@pytest.fixture
def hub():
    with FakeHub() as h:
        h.add_repo(REPO, {"tiny.Q4_K_M.gguf": WEIGHTS, "config.json": CONFIG, "sub/notes.txt": b"n\n"})
        yield h


def _dl(hub, cache, filename="tiny.Q4_K_M.gguf", **kw):
    return within(30, lambda: hf_hub_download(REPO, filename, endpoint=hub.endpoint, cache_dir=cache, **kw),
                  "hf_hub_download")


def test_model_info_gives_commit_sizes_and_lfs_sha256(hub):
    api = HfApi(endpoint=hub.endpoint)
    info = within(20, lambda: api.model_info(REPO, files_metadata=True))
    assert info.sha == hub.repos[REPO].refs["main"]
    by = {s.rfilename: s for s in info.siblings}
    assert sorted(by) == ["config.json", "sub/notes.txt", "tiny.Q4_K_M.gguf"]
    assert by["tiny.Q4_K_M.gguf"].size == len(WEIGHTS)
    assert by["tiny.Q4_K_M.gguf"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert by["config.json"].lfs is None and by["config.json"].blob_id == git_blob_sha(CONFIG)
    bare = within(20, lambda: api.model_info(REPO))
    assert bare.siblings[0].size is None  # sizes only when asked, as the Hub does
    assert within(20, lambda: api.model_info(REPO, expand=["sha"])).sha == info.sha
    both = within(20, lambda: api.model_info(REPO, expand=["sha", "siblings"]))
    assert (both.sha, len(both.siblings), both.downloads) == (info.sha, 3, None)  # only what was asked


def test_branch_and_tag_resolve_to_their_commit(hub):
    old = hub.repos[REPO].refs["main"]
    hub.tag(REPO, "v1", old)
    new = hub.commit(REPO, {"tiny.Q4_K_M.gguf": WEIGHTS[::-1], "config.json": CONFIG})
    api = HfApi(endpoint=hub.endpoint)
    assert within(20, lambda: api.model_info(REPO, revision="v1")).sha == old
    assert within(20, lambda: api.model_info(REPO, revision="main")).sha == new
    assert within(20, lambda: api.model_info(REPO, revision=old)).sha == old


def test_hf_hub_download_lfs_via_cdn_and_plain_file(hub, tmp_path):
    path = Path(_dl(hub, tmp_path))
    assert path.read_bytes() == WEIGHTS
    commit = hub.repos[REPO].refs["main"]
    assert path.parent.name == commit  # huggingface_hub's cache: snapshots/<commit>/FILE -> blobs/<etag>
    assert path.resolve().name == hashlib.sha256(WEIGHTS).hexdigest()
    assert Path(_dl(hub, tmp_path, "config.json")).resolve().name == git_blob_sha(CONFIG)
    cdn_gets = [r for r in hub.requests if r["cdn"]]
    assert [r["method"] for r in cdn_gets] == ["GET"]  # HEAD stopped at the 302, GET went to the "CDN"
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == len(WEIGHTS)


def test_snapshot_download_fetches_every_file_of_the_commit(hub, tmp_path):
    folder = Path(within(30, lambda: snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=tmp_path)))
    assert folder.name == hub.repos[REPO].refs["main"]
    assert (folder / "tiny.Q4_K_M.gguf").read_bytes() == WEIGHTS
    assert (folder / "sub" / "notes.txt").read_bytes() == b"n\n"
    assert (folder / "config.json").read_bytes() == CONFIG


def test_dropped_connection_resumes_with_range(hub, tmp_path):
    # huggingface_hub writes what it receives in 10 MiB chunks (DOWNLOAD_CHUNK_SIZE): a cut loses the bytes
    # since the last whole chunk, and its retry asks for the rest with Range from there.
    chunk = 10 * 1024 * 1024
    big = os.urandom(1024 * 1024) * 24
    hub.commit(REPO, {"big.gguf": big})
    cut = 15 * 1024 * 1024
    hub.faults.drop_after = {"big.gguf": cut}
    hub.faults.drop_times = 1
    path = Path(within(60, lambda: hf_hub_download(REPO, "big.gguf", endpoint=hub.endpoint, cache_dir=tmp_path)))
    assert path.read_bytes() == big
    ranges = [r["range"] for r in hub.requests if r["cdn"]]
    assert ranges == [None, f"bytes={chunk}-"]
    served_twice = hub.bytes_served(REPO, "big.gguf") - len(big)
    assert served_twice == cut - chunk


def test_wrong_bytes_are_caught_by_the_hub_checksums_not_by_the_download(hub, tmp_path):
    # huggingface_hub checks only the size of what it downloads; the sha256 check is the caller's (the
    # store's) job, against the LFS sha256 the Hub lists: verify_repo_checksums is that check.
    hub.faults.wrong_bytes = {"tiny.Q4_K_M.gguf"}
    path = Path(_dl(hub, tmp_path))
    assert path.read_bytes() != WEIGHTS and len(path.read_bytes()) == len(WEIGHTS)
    hub.faults.wrong_bytes = set()
    _dl(hub, tmp_path, "config.json")
    result = within(20, lambda: HfApi(endpoint=hub.endpoint).verify_repo_checksums(REPO, cache_dir=tmp_path))
    assert [(m["path"], m["expected"]) for m in result.mismatches] == [
        ("tiny.Q4_K_M.gguf", hashlib.sha256(WEIGHTS).hexdigest())]


def test_throttle_paces_the_body(hub, tmp_path):
    import time
    hub.faults.rate = 1_000_000  # 256 KiB at 1 MB/s: >= 0.2 s
    t0 = time.monotonic()
    _dl(hub, tmp_path)
    assert time.monotonic() - t0 >= 0.2


def test_missing_file_and_revision_raise_the_client_errors(hub, tmp_path):
    with pytest.raises(RemoteEntryNotFoundError):
        _dl(hub, tmp_path, "nope.gguf")
    with pytest.raises(RevisionNotFoundError):
        _dl(hub, tmp_path, revision="v9")
    with pytest.raises(RevisionNotFoundError):
        within(20, lambda: HfApi(endpoint=hub.endpoint).model_info(REPO, revision="v9"))
    with pytest.raises(RepositoryNotFoundError):
        within(20, lambda: HfApi(endpoint=hub.endpoint).model_info("org/absent"))


def test_token_required(hub, tmp_path):
    hub.add_repo("org/private", {"m.gguf": WEIGHTS}, token="hf_good")
    hub.add_repo("org/gated", {"m.gguf": WEIGHTS}, token="hf_good", gated=True)
    api = HfApi(endpoint=hub.endpoint)
    with pytest.raises(RepositoryNotFoundError) as err:
        within(20, lambda: api.model_info("org/private", token=False))
    assert err.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as gated:
        within(20, lambda: api.model_info("org/gated", token=False))
    assert gated.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as denied:
        within(20, lambda: api.model_info("org/gated", token="hf_other"))
    assert denied.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as bad:
        within(20, lambda: api.model_info("org/private", token="hf_other"))
    assert bad.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        within(20, lambda: hf_hub_download("org/private", "m.gguf", endpoint=hub.endpoint, cache_dir=tmp_path,
                                           token=False))
    got = within(20, lambda: hf_hub_download("org/private", "m.gguf", endpoint=hub.endpoint, cache_dir=tmp_path,
                                             token="hf_good"))
    assert Path(got).read_bytes() == WEIGHTS
    cdn = [r for r in hub.requests if r["cdn"]]
    assert cdn and all(r["auth"] is None for r in cdn)  # the token never leaves the Hub's origin


def test_from_dir_and_hf_endpoint_variable(tmp_path):
    (tmp_path / "hubroot" / "acme" / "m").mkdir(parents=True)
    (tmp_path / "hubroot" / "acme" / "m" / "w.safetensors").write_bytes(b"x" * 1000)
    with FakeHub.from_dir(tmp_path / "hubroot") as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache"),
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": ""}
        code = "from huggingface_hub import hf_hub_download as d; print(d('acme/m', 'w.safetensors'))"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert Path(out.stdout.strip()).read_bytes() == b"x" * 1000
        assert Path(out.stdout.strip()).is_relative_to(tmp_path / "cache")


def test_bytes_are_counted_before_a_client_can_have_them(hub, monkeypatch):
    """The tests compare bytes_served right after a download returns: the count may not lag the bytes.
    Forced by a slow counter (it counted after the write, so a client could finish first)."""
    import time

    import httpx

    slow_count = hub._count

    def count_slowly(key, n):
        time.sleep(0.3)
        slow_count(key, n)

    monkeypatch.setattr(hub, "_count", count_slowly)
    cdn = httpx.get(f"{hub.endpoint}/{REPO}/resolve/main/tiny.Q4_K_M.gguf", follow_redirects=True, timeout=30)
    assert cdn.content == WEIGHTS
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == len(WEIGHTS)


def test_a_hold_pauses_a_body_at_a_byte_until_released(hub):
    """The seam for "while it downloads": the body stops at `at` until the test lets it go (one request)."""
    import threading

    import httpx

    held = hub.hold("tiny.Q4_K_M.gguf", 100_000)
    got = {}
    url = f"{hub.endpoint}/{REPO}/resolve/main/tiny.Q4_K_M.gguf"
    t = threading.Thread(target=lambda: got.update(r=httpx.get(url, follow_redirects=True, timeout=30)))
    t.start()
    assert held.reached.wait(10)
    assert hub.bytes_served(REPO, "tiny.Q4_K_M.gguf") == 100_000 and t.is_alive()
    held.release.set()
    t.join(10)
    assert got["r"].content == WEIGHTS
    assert httpx.get(url, follow_redirects=True, timeout=10).content == WEIGHTS  # the next request is not held
