"""sources/gc.py's Schedule: when the daemon's poller thread collects the source's repository (after
`every` new commits fetched, or `interval` seconds since the last collection with one new commit at
least), on an injected clock."""

from __future__ import annotations

from xgen_declare.sources.gc import GcResult, Schedule, Usage


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
