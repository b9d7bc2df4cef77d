"""Keeping STATE/source/repo.git small: a branch force-pushed and polled for months leaves every commit it
ever named in the repository (each fetch adds one commit, its trees and blobs; the refs move on, the
objects stay). `collect()` removes what no kept commit reaches, with the `git` binary (argv, the source's
timeout, never a shell), while the caller holds the source's lock (GitSource.gc), so no fetch, pin or
archive runs meanwhile.

Kept: the current commit (refs/xgen/current), the pinned one while a pin is recorded, the last fetched
(refs/xgen/fetched: a refused commit is not fetched again on every poll) and every commit whose tree is
on disk (STATE/source/trees/<commit>: the one a daemon serves through STATE/source/serving, the one
before). Each of those gets a ref (refs/xgen/keep/<commit>); every other ref under refs/ (a deepened
history, the branches fetched to find a pinned commit, a stale pin) is deleted, then
`git gc --prune=now` drops the unreachable objects and the shallow boundaries that lead nowhere.

Git's own automatic gc is off for the source (gitcmd.py): it would detach from the fetch, outlive its
timeout and run outside the lock. `Schedule` says when the daemon's poller thread runs this one: after
`every` fetches that brought a new commit, or once `interval` seconds passed since the last (at least
one new commit since), on an injectable monotonic clock.

Each collection's result is kept in STATE/source/last_gc (`record`, written atomically like the source's
other state files; `last_recorded` reads it back, bounded): when, objects and bytes before and after, the
commits kept and the error if git failed, for `source status`, the API's source answer and /metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from xgen_declare.sources import state
from xgen_declare.sources.gitcmd import GitRunner

__all__ = ["KEEP_PREFIX", "RECORD", "GcResult", "Schedule", "collect", "describe", "last_recorded", "record", "usage"]

RECORD = "last_gc"  # STATE/source/last_gc: the last collection's result (GcResult.to_json)

KEEP_PREFIX = "refs/xgen/keep/"
EVERY = 50            # fetches that brought a new commit
INTERVAL = 86400.0    # seconds: at most a day between two collections while commits arrive


@dataclass(frozen=True)
class Usage:
    objects: int  # loose + packed
    bytes: int    # loose + packs (git count-objects -v)


@dataclass(frozen=True)
class GcResult:
    before: Usage | None
    after: Usage | None
    kept: tuple[str, ...]    # the commits kept (sorted)
    error: str | None = None  # why git gc failed (the repository is as before or partly packed; nothing is lost)

    def text(self) -> str:
        if self.error:
            return f"git gc failed: {self.error}"
        b, a = self.before, self.after
        if b is None or a is None:
            return "collected"
        return (f"{b.objects} -> {a.objects} objects, {b.bytes / 1048576:.1f} -> {a.bytes / 1048576:.1f} MiB, "
                f"{len(self.kept)} commit(s) kept")

    def to_json(self, at: float) -> dict:
        """The record of STATE/source/last_gc: `at` (Unix time), ok, error, before/after, kept."""
        def use(u: Usage | None) -> dict | None:
            return None if u is None else {"objects": u.objects, "bytes": u.bytes}
        return {"at": at, "ok": self.error is None, "error": self.error, "before": use(self.before),
                "after": use(self.after), "kept": list(self.kept)}

    @classmethod
    def from_json(cls, data: dict) -> "GcResult":
        def use(u: dict | None) -> Usage | None:
            return None if u is None else Usage(u["objects"], u["bytes"])
        return cls(use(data["before"]), use(data["after"]), tuple(data["kept"]), data["error"])


def record(root: Path, result: GcResult, at: float) -> dict:
    """Write `result` to ROOT/last_gc atomically; StateFileError when it cannot be written."""
    data = result.to_json(at)
    state.write_json(root / RECORD, data)
    return data


def last_recorded(root: Path) -> dict | None:
    """The last collection's record (GcResult.to_json) from ROOT/last_gc; None before the first;
    StateFileError when the file is damaged."""
    path = root / RECORD
    data = state.read_json(path)
    if data is not None and not _valid(data):
        raise state.StateFileError(f"{path} does not hold the record of a git gc (remove it; xgen-declare writes "
                                   "it again at the next collection)")
    return data


def describe(data: dict) -> str:
    """One line for a record of last_recorded(): what the collection did, or why it failed."""
    return GcResult.from_json(data).text()


def _valid(data: dict) -> bool:
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def use(u: object) -> bool:
        return u is None or (isinstance(u, dict) and isinstance(u.get("objects"), int)
                             and isinstance(u.get("bytes"), int))
    kept = data.get("kept")
    return (number(data.get("at")) and isinstance(data.get("ok"), bool) and use(data.get("before"))
            and use(data.get("after")) and (data.get("error") is None or isinstance(data.get("error"), str))
            and isinstance(kept, list) and all(isinstance(c, str) for c in kept))


class Schedule:
    """When to collect: `note(fetched)` after each poll, `due()` before collecting, `done()` after."""

    def __init__(self, every: int = EVERY, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.interval, self.clock = every, interval, clock
        self.fetches = 0          # new commits fetched since the last collection
        self.last = clock()       # when the last collection ran (the start counts as one)
        self._fetched: str | None = None

    def note(self, fetched: str | None) -> None:
        if fetched is not None and fetched != self._fetched:
            self._fetched = fetched
            self.fetches += 1

    def due(self) -> bool:
        return self.fetches >= self.every or (self.fetches > 0 and self.clock() - self.last >= self.interval)

    def done(self) -> None:
        self.fetches, self.last = 0, self.clock()


def usage(runner: GitRunner, repo: Path) -> Usage | None:
    res = runner.run("count-objects", "-v", cwd=repo)
    if not res.ok:
        return None
    fields = dict(line.split(": ", 1) for line in res.stdout.splitlines() if ": " in line)
    try:
        return Usage(int(fields["count"]) + int(fields["in-pack"]),
                     (int(fields["size"]) + int(fields["size-pack"])) * 1024)
    except (KeyError, ValueError):
        return None


def collect(runner: GitRunner, repo: Path, keep_refs: Iterable[str], keep_commits: Iterable[str]) -> GcResult:
    """Delete every ref but `keep_refs`, give each of `keep_commits` present in the repository a keep ref,
    then `git gc --prune=now`. The caller holds the source's lock."""
    before = usage(runner, repo)
    present = sorted({c for c in keep_commits if _has_commit(runner, repo, c)})
    wanted = {KEEP_PREFIX + c: c for c in present}
    keep = set(keep_refs) | set(wanted)
    listing = runner.run("for-each-ref", "--format=%(refname)", cwd=repo)
    if not listing.ok:
        return GcResult(before, before, tuple(present), f"cannot list the refs: {listing.text()}")
    lines = [f"delete {ref}" for ref in listing.stdout.split() if ref not in keep]
    lines += [f"update {ref} {commit}" for ref, commit in wanted.items()]
    if lines:
        res = runner.run("update-ref", "--stdin", cwd=repo, input="\n".join(lines) + "\n")
        if not res.ok:
            return GcResult(before, before, tuple(present), f"cannot update the refs: {res.text()}")
    res = runner.run("gc", "--quiet", "--prune=now", cwd=repo)
    after = usage(runner, repo)
    return GcResult(before, after, tuple(present), None if res.ok else res.text())


def _has_commit(runner: GitRunner, repo: Path, commit: str) -> bool:
    return runner.run("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo).ok
