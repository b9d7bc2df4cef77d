"""sources/gc.py's Schedule: when the daemon's poller thread collects the source's repository (after
`every` new commits fetched, or `interval` seconds since the last collection with one new commit at
least), on an injected clock."""

from __future__ import annotations

import pytest

from xgen_declare.sources.gc import GcResult, Schedule, Usage
from xgen_declare.sources.state import StateFileError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_due_after_every_new_commit_fetched_not_after_the_same_one_again():
    s = Schedule(every=3, interval=3600, clock=Clock())
    for fetched in ("a" * 40, "a" * 40, None, "b" * 40, "b" * 40):
        s.note(fetched)
    assert (s.fetches, s.due()) == (2, False)
    s.note("a" * 40)  # back to an earlier commit (a force push): new objects again
    assert (s.fetches, s.due()) == (3, True)
    s.done()
    assert (s.fetches, s.due()) == (0, False)


def test_due_once_the_interval_passed_only_when_something_was_fetched():
    clock = Clock()
    s = Schedule(every=100, interval=3600, clock=clock)
    clock.now += 3600
    assert not s.due()  # nothing new: nothing to collect
    s.note("c" * 40)
    assert s.due()
    s.done()
    s.note("d" * 40)
    clock.now += 3599
    assert not s.due()
    clock.now += 1
    assert s.due()


def test_the_result_text():
    r = GcResult(Usage(120, 5 * 1048576), Usage(9, 1048576 // 2), ("e" * 40, "f" * 40))
    assert r.text() == "120 -> 9 objects, 5.0 -> 0.5 MiB, 2 commit(s) kept"
    assert GcResult(None, None, (), "git gc did not finish in 120 s").text() == \
        "git gc failed: git gc did not finish in 120 s"


def test_the_record_round_trips_through_the_state_dir(tmp_path):
    from xgen_declare.sources.gc import describe, last_recorded, record
    assert last_recorded(tmp_path) is None
    r = GcResult(Usage(120, 5 * 1048576), Usage(9, 1048576 // 2), ("e" * 40, "f" * 40))
    data = record(tmp_path, r, at=1700000000.5)
    assert data == {"at": 1700000000.5, "ok": True, "error": None, "before": {"objects": 120, "bytes": 5242880},
                    "after": {"objects": 9, "bytes": 524288}, "kept": ["e" * 40, "f" * 40]}
    assert last_recorded(tmp_path) == data and sorted(p.name for p in tmp_path.iterdir()) == ["last_gc"]
    assert describe(data) == "120 -> 9 objects, 5.0 -> 0.5 MiB, 2 commit(s) kept"
    failed = record(tmp_path, GcResult(None, None, (), "git gc did not finish in 120 s"), at=1700000100.0)
    assert (last_recorded(tmp_path), describe(failed)) == (failed, "git gc failed: git gc did not finish in 120 s")
    assert failed["ok"] is False and failed["before"] is None


@pytest.mark.parametrize("text", ["{", "[]", '{"at": "yesterday", "ok": true, "error": null, "before": null, '
                                  '"after": null, "kept": []}', '{"at": 1.0, "ok": true, "kept": "abc"}'])
def test_a_damaged_record_is_an_error_naming_the_file(tmp_path, text):
    from xgen_declare.sources.gc import last_recorded
    (tmp_path / "last_gc").write_text(text)
    with pytest.raises(StateFileError) as exc:
        last_recorded(tmp_path)
    assert str(exc.value) in (
        f"{tmp_path / 'last_gc'} is not a JSON object (remove it; xgen-declare writes it)",
        f"{tmp_path / 'last_gc'} does not hold the record of a git gc (remove it; xgen-declare writes it again at "
        "the next collection)")
