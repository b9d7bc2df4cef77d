"""store/gc.collect with plain data: least recently used first, one removal per blob however many
snapshots link it, and each kept file with its reason (a manifest uses it / a process uses it)."""

from __future__ import annotations

from pathlib import Path

from xgen_declare.store.gc import Kept, collect
from xgen_declare.store.listing import StoredFile

R = Path("/s/models--o--m")


def f(name: str, commit: str, blob: str, used: float, size: int = 10) -> StoredFile:
    return StoredFile("o/m", R, commit, ("main",), name, R / "blobs" / blob, size, used)


def test_least_recently_used_first_and_one_removal_per_blob():
    old, new, shared = f("old.gguf", "c1", "b1", 100.0), f("new.gguf", "c1", "b2", 300.0), f("x.gguf", "c1", "b3", 200.0)
    again = f("x.gguf", "c2", "b3", 200.0)  # the same blob linked from a second commit
    removals, kept = collect([new, old, shared, again], {}, {}, real=str)
    assert [(r.blob.name, r.last_used) for r in removals] == [("b1", 100.0), ("b3", 200.0), ("b2", 300.0)]
    assert removals[1].files == (shared, again) and kept == []


def test_what_a_manifest_or_a_process_uses_is_kept_with_the_reason():
    used, running, free = f("a.gguf", "c", "b1", 1.0), f("b.gguf", "c", "b2", 2.0), f("c.gguf", "c", "b3", 3.0)
    removals, kept = collect([used, running, free], {str(R / "blobs/b1"): ["a", "b"]},
                             {str(R / "blobs/b2"): ["m (pid 7)"], str(R / "blobs/b1"): ["a (pid 8)"]}, real=str)
    assert [r.blob.name for r in removals] == ["b3"]
    assert kept == [Kept(used, "used by a, b"), Kept(running, "in use by m (pid 7)")]
