"""store/ledger.py: the blobs xgen-declare fetched, so that `store gc` leaves other tools' files alone."""

from __future__ import annotations

import os
from pathlib import Path

from xgen_declare.store import ledger
from xgen_declare.store.gc import NOT_OURS, Kept, collect, ours
from xgen_declare.store.listing import StoredFile


def blob(store: Path, repo: str, etag: str) -> Path:
    p = store / repo / "blobs" / etag
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_record_ours_and_forget(tmp_path):
    a, b = blob(tmp_path, "models--o--m", "a" * 64), blob(tmp_path, "models--o--m", "b" * 64)
    blob(tmp_path, "models--o--other", "d" * 64)  # another tool's
    ledger.record(tmp_path, a)
    ledger.record(tmp_path, b)
    assert ledger.ours(tmp_path) == {os.path.realpath(p) for p in (a, b)}
    assert (tmp_path / ".locks/xgen-declare/fetched").read_text() == \
        f"models--o--m/blobs/{'a' * 64}\nmodels--o--m/blobs/{'b' * 64}\n"
    a.unlink()
    ledger.forget(tmp_path, [b])  # b removed by gc; a gone meanwhile: both lines dropped
    assert (tmp_path / ".locks/xgen-declare/fetched").read_text() == ""


def test_partials_are_noted_apart_and_their_lines_go_with_their_files(tmp_path):
    done = blob(tmp_path, "models--o--m", "a" * 64)
    part, gone = (blob(tmp_path, "models--o--m", f"{c * 64}.incomplete") for c in "bc")
    ledger.record(tmp_path, done)
    for p in (part, gone, part):  # a resume notes it again
        ledger.record(tmp_path, p, partial=True)
    assert (tmp_path / ".locks/xgen-declare/fetched").read_text() == f"models--o--m/blobs/{'a' * 64}\n"
    assert ledger.ours(tmp_path) == {os.path.realpath(p) for p in (done, part, gone)}
    gone.unlink()  # completed or removed
    ledger.forget(tmp_path, [])
    assert (tmp_path / ".locks/xgen-declare/partials").read_text() == f"models--o--m/blobs/{'b' * 64}.incomplete\n"
    assert (tmp_path / ".locks/xgen-declare/fetched").read_text() == f"models--o--m/blobs/{'a' * 64}\n"


def test_a_ledger_that_cannot_be_written_never_fails_the_fetch_and_claims_nothing(tmp_path, caplog):
    a = blob(tmp_path, "models--o--m", "a" * 64)
    (tmp_path / ".locks").write_text("a file where the directory goes")
    ledger.record(tmp_path, a)  # no exception: gc keeps the file, the log says why
    assert "cannot note" in caplog.text and ledger.ours(tmp_path) == set()


def test_a_lock_another_process_holds_costs_a_warning_never_a_stalled_fetch(tmp_path, caplog, monkeypatch):
    """The store may be the shared HuggingFace cache: another process holding the ledger's lock must not
    hold up a fetch (record logs and goes on) or a gc (forget raises OSError, which `store gc` reports)."""
    import fcntl
    import time

    import pytest

    a = blob(tmp_path, "models--o--m", "a" * 64)
    lock = tmp_path / ".locks/xgen-declare/fetched.lock"
    lock.parent.mkdir(parents=True)
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # flock is per open file: this fd stands for another process
    monkeypatch.setattr(ledger, "LOCK_WAIT", 0.3)
    try:
        t0 = time.monotonic()
        ledger.record(tmp_path, a)
        assert time.monotonic() - t0 < 5 and "is locked by another process" in caplog.text
        assert ledger.ours(tmp_path) == set()
        with pytest.raises(OSError, match="is locked by another process"):
            ledger.forget(tmp_path, [a])
    finally:
        os.close(holder)
    ledger.record(tmp_path, a)  # the lock free again: noted
    assert ledger.ours(tmp_path) == {os.path.realpath(a)}


def test_a_ledger_line_outside_the_store_is_ignored(tmp_path):
    (tmp_path / "store/.locks/xgen-declare").mkdir(parents=True)
    (tmp_path / "store/.locks/xgen-declare/fetched").write_text("../victim\n")
    assert ledger.ours(tmp_path / "store") == set()


def test_collect_keeps_what_is_not_ours_unless_all():
    r = Path("/s/models--o--m")
    mine = StoredFile("o/m", r, "c", ("main",), "a.gguf", r / "blobs/b1", 10, 1.0)
    theirs = StoredFile("o/m", r, "c", ("main",), "b.gguf", r / "blobs/b2", 20, 2.0)
    removals, kept = collect([mine, theirs], {}, {}, real=str, ours={str(r / "blobs/b1")})
    assert [x.blob.name for x in removals] == ["b1"] and kept == [Kept(theirs, NOT_OURS)]
    removals, kept = collect([mine, theirs], {}, {}, real=str, ours=None)
    assert [x.blob.name for x in removals] == ["b1", "b2"] and kept == []


def test_url_files_are_ours_by_their_directory(tmp_path):
    u = StoredFile("url", tmp_path / "xgen-urls", "c" * 64, (), "u.gguf", tmp_path / "xgen-urls/blobs" / ("c" * 64),
                   1, 0.0)
    h = StoredFile("o/m", tmp_path / "models--o--m", "c", (), "m.gguf", tmp_path / "models--o--m/blobs/b", 1, 0.0)
    assert ours(tmp_path, [u, h], real=str) == {str(u.blob)}
