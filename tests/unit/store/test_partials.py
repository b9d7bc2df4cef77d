"""store/partials.py: which partial downloads gc may remove (pure: wanted by repository or URL sha256, ours
by the ledger, huggingface_hub's never resumed) and their removal under the writer's flock, tried without
waiting: a lock held on another descriptor (another process, or a fetch thread of this one) keeps the file."""

from __future__ import annotations

import fcntl
import os

from xgen_declare.store.partials import (BUSY, NOT_OURS, UNKNOWN, collect_partials, list_partials, lock_path,
                                         locked, remove_partial, wanted_key)

E1, E2, E3 = "1" * 64, "2" * 64, "3" * 40


def store(tmp_path):
    blobs = tmp_path / "models--o--m" / "blobs"
    urls = tmp_path / "xgen-urls" / "blobs"
    blobs.mkdir(parents=True)
    urls.mkdir(parents=True)
    (blobs / f"{E1}.incomplete").write_bytes(b"a" * 10)
    (blobs / f"{E2}.0123abcd.incomplete").write_bytes(b"b" * 20)
    (blobs / E3).write_bytes(b"done")                                   # a blob: not a partial
    (blobs / f"{E3}.incomplete").symlink_to(blobs / E3)                 # a link: never listed
    (urls / f"{E2}.incomplete").write_bytes(b"c" * 30)
    os.utime(blobs / f"{E1}.incomplete", (50, 50))
    return tmp_path


def test_list_partials_tells_ours_from_huggingface_hubs_and_skips_links(tmp_path):
    got = [(p.repo, p.path.name, p.key, p.size, p.hf) for p in list_partials(store(tmp_path))]
    assert got == [("o/m", f"{E1}.incomplete", E1, 10, False), ("o/m", f"{E2}.0123abcd.incomplete", E2, 20, True),
                   ("url", f"{E2}.incomplete", E2, 30, False)]


def test_wanted_ours_and_not_attributable_partials(tmp_path):
    parts = list_partials(store(tmp_path))
    ours, hf, url = parts
    removals, kept = collect_partials(parts, {}, {str(ours.path)})
    assert removals == [ours, url] and kept == [(hf, NOT_OURS)]            # oldest written first
    removals, kept = collect_partials(parts, {}, set())                     # the ledger does not name it
    assert removals == [url] and kept == [(ours, UNKNOWN), (hf, NOT_OURS)]
    wanted = {wanted_key("models--o--m"): ["a"], wanted_key("xgen-urls", E2): ["u"]}
    removals, kept = collect_partials(parts, wanted, None)                  # --all
    assert removals == [hf] and kept == [(ours, "wanted by a (the next fetch resumes it)"),
                                         (url, "wanted by u (the next fetch resumes it)")]
    assert collect_partials(parts, {wanted_key("xgen-urls", E1): ["x"]}, None)[0] == [ours, hf, url]


def test_a_held_lock_keeps_the_partial_and_a_free_one_is_held_while_removing(tmp_path):
    root = store(tmp_path)
    ours = list_partials(root)[0]
    lock = lock_path(root, ours)
    assert lock == root / ".locks" / "models--o--m" / f"{E1}.lock"
    with locked(lock) as free:                   # the writer's lock, as filelock takes it: another descriptor
        assert free
        assert remove_partial(root, ours) == BUSY and ours.path.exists()
        assert remove_partial(root, ours, dry_run=True) == BUSY
    writer = os.open(lock, os.O_RDWR)
    fcntl.flock(writer, fcntl.LOCK_EX)
    os.close(writer)                             # released: gc may go on
    assert remove_partial(root, ours, dry_run=True) == "removed" and ours.path.exists()
    assert remove_partial(root, ours) == "removed" and not ours.path.exists()
    assert remove_partial(root, ours) == "gone" and lock.exists()  # the lock file stays: waiters share it


def test_referenced_partials_claims_a_hub_sources_repository_and_a_url_sources_sha256(tmp_path):
    from xgen_declare.manifests.source import Source, parse_source
    from xgen_declare.store.usage import referenced_partials
    from xgen_declare.store.wanted import Wanted
    here = tmp_path / "m.yaml"
    items = [Wanted("a", str(here), 1, parse_source("hf://o/m:Q4_K_M")),
             Wanted("b", str(here), 1, parse_source("hf://o/m@v2/x.gguf")),
             Wanted("u", str(here), 1, parse_source({"url": "https://h/x.gguf", "sha256": E1})),
             Wanted("p", str(here), 1, Source("path", "o/other:Q8_0", path="o/other:Q8_0")),  # a hub id model_path
             Wanted("l", str(here), 1, Source("path", str(tmp_path), path=str(tmp_path)))]     # a real local path
    assert referenced_partials(items, tmp_path / "store") == {
        "models--o--m": ["a", "b"], f"xgen-urls/{E1}": ["u"], "models--o--other": ["p"]}
