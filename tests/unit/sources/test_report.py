"""sources/report.py: the source's report read from the state dir without fetching; its "last_gc" is the
record of the last `git gc` (STATE/source/last_gc) or null, and a damaged record is one of the
`problems`, named with what to do, never a traceback."""

from __future__ import annotations

from xgen_declare.sources.gc import GcResult, Usage, record
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.report import report
from xgen_declare.sources.spec import GitSpec

SHA = "0123456789abcdef0123456789abcdef01234567"


def source(tmp_path) -> GitSource:
    return GitSource(GitSpec(url="file:///srv/git/llm.git", ref="main", path="manifests"), tmp_path / "state")


def test_without_a_gc_record_last_gc_is_null(tmp_path):
    r = report(source(tmp_path))
    assert (r["last_gc"], r["problems"], r["last_poll"], r["pin"]) == (None, [], None, None)


def test_the_last_gc_record_is_reported(tmp_path):
    src = source(tmp_path)
    src.root.mkdir(parents=True)
    record(src.root, GcResult(Usage(300, 4 << 20), Usage(12, 1 << 20), (SHA,)), at=1700000000.0)
    r = report(src)
    assert r["last_gc"] == {"at": 1700000000.0, "ok": True, "error": None,
                            "before": {"objects": 300, "bytes": 4 << 20}, "after": {"objects": 12, "bytes": 1 << 20},
                            "kept": [SHA]}
    assert r["problems"] == []
    record(src.root, GcResult(Usage(300, 4 << 20), Usage(300, 4 << 20), (SHA,), "cannot update the refs: no"),
           at=1700000500.0)
    assert (report(src)["last_gc"]["ok"], report(src)["last_gc"]["error"]) == (False, "cannot update the refs: no")


def test_a_damaged_gc_record_is_a_problem_and_the_rest_is_reported(tmp_path):
    src = source(tmp_path)
    src.root.mkdir(parents=True)
    (src.root / "last_gc").write_text('{"at": 1.0}')
    r = report(src)
    assert r["last_gc"] is None and r["source"]["url"] == "file:///srv/git/llm.git"
    assert r["problems"] == [f"{src.root / 'last_gc'} does not hold the record of a git gc (remove it; "
                             "xgen-declare writes it again at the next collection)"]
    (src.root / "last_gc").unlink()
    (src.root / "last_gc").symlink_to("/etc/passwd")
    assert report(src)["problems"][0].startswith(f"{src.root / 'last_gc'}")
