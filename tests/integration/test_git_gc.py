"""The git source's repository stays bounded (sources/gc.py, reconciler/gitpoll.py): a branch force-pushed
over and over leaves every fetched commit's objects in STATE/source/repo.git until the poller thread
collects them; the collection keeps the served, current, pinned and on-disk commits, and the daemon's
source keeps serving and switching afterwards. Every wait is bounded."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from xgen_declare.api.metrics import Metrics
from xgen_declare.config import Config
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.gitpoll import GitPoll
from xgen_declare.sources import state, trees
from xgen_declare.sources.gc import KEEP_PREFIX, Schedule, usage
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.gitcmd import GitRunner
from xgen_declare.sources.spec import GitSpec
from xgen_declare.testing.deadline import within
from xgen_declare.testing.gitrepos import WorkRepo

T = 30


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Control:
    def __init__(self) -> None:
        self.changed: list[str] = []
        self.env = SimpleNamespace(config=Config())

    def file_changed(self, path: str = "") -> None:
        self.changed.append(path)


def until(pred, what: str, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def has(repo: Path, commit: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{tree}}"], cwd=repo, capture_output=True,
                          timeout=30).returncode == 0


def refs(repo: Path) -> list[str]:
    out = subprocess.run(["git", "for-each-ref", "--format=%(refname)"], cwd=repo, capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return sorted(out.split())


def rewrite(origin: WorkRepo, base: str, n: int) -> str:
    """Force-push a commit on `base` carrying 64 KiB of fresh random bytes (nothing to delta against)."""
    origin.reset_hard(base)
    commit = origin.commit({"manifests/a.yaml": f"a: {n}\n", "blob.txt": os.urandom(32 * 1024).hex()},
                           f"rewrite {n}")
    origin.push(force=True)
    return commit


@pytest.fixture
def origin(tmp_path):
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    repo.commit({"manifests/a.yaml": "a: 0\n"}, "first")
    repo.push()
    return repo


def test_force_pushes_then_the_poller_thread_collects_and_the_served_commit_stays(origin, tmp_path):
    base = origin.head()
    clock = Clock()
    spec = GitSpec(url=f"file://{origin.bare}", ref="main", path="manifests", interval=3600)
    poll = GitPoll(spec, str(tmp_path / "state"), gc_schedule=Schedule(every=1000, interval=86400, clock=clock))
    control = Control()
    poll.start(lambda hook: None, lambda: None)
    try:
        until(lambda: poll.polls == 1, "the first poll")
        poll.tick(control)
        commits = []
        for n in range(1, 25):
            commits.append(rewrite(origin, base, n))
            poll.poll_now()
            until(lambda: poll.polls == n + 1, f"poll {n + 1}")
            poll.tick(control)  # the loop serves the switch; the thread may poll again
        repo = poll.root / "repo.git"
        served = poll.serving_commit()
        assert served == commits[-1] and poll.last_gc is None
        before = usage(GitRunner(), repo)
        assert all(has(repo, c) for c in commits)  # every rewritten commit is still in the repository
        shallow_before = len((repo / "shallow").read_text().split())

        clock.now += 86400  # a day later: the next poll that fetches something new collects
        commits.append(rewrite(origin, base, 25))
        poll.poll_now()
        until(lambda: poll.last_gc is not None, "the collection")
        gc = poll.last_gc
        assert gc.error is None and gc.before.objects > before.objects  # the last rewrite came in too
        assert gc.after.objects < gc.before.objects / 5 and gc.after.bytes < gc.before.bytes / 5, gc.text()
        current = trees.current_commit(poll.root)
        assert current == commits[-1] and set(gc.kept) == {served, current}
        assert has(repo, served) and has(repo, current)
        assert not any(has(repo, c) for c in commits[:-2])
        assert len((repo / "shallow").read_text().split()) < shallow_before
        assert refs(repo) == sorted(["refs/xgen/current", "refs/xgen/fetched", KEEP_PREFIX + served,
                                     KEEP_PREFIX + current])
        assert (Path(poll.manifests_dir) / "a.yaml").read_text() == "a: 24\n"  # still served, untouched

        poll.tick(control)  # serves the last switch, and the source goes on after the collection
        assert (Path(poll.manifests_dir) / "a.yaml").read_text() == "a: 25\n"
        origin.commit({"manifests/a.yaml": "a: 26\n"}, "on top")
        origin.push()
        polls = poll.polls
        poll.poll_now()
        until(lambda: poll.polls > polls, "a poll after the collection")
        poll.tick(control)
        assert (Path(poll.manifests_dir) / "a.yaml").read_text() == "a: 26\n"
        assert poll.serving_commit() == origin.head()
        assert (poll.gc_schedule.fetches, poll.last_gc is gc) == (1, True)  # not again until the schedule says
    finally:
        poll.stop()


def test_a_pinned_commit_survives_and_an_unpinned_one_goes(origin, tmp_path):
    base = origin.head()
    spec = GitSpec(url=f"file://{origin.bare}", ref="main", path="manifests")
    source = GitSource(spec, tmp_path / "state")
    old = rewrite(origin, base, 1)
    assert within(T, source.sync, "sync").commit == old
    for n in range(2, 6):
        rewrite(origin, base, n)
        within(T, source.sync, "sync")
    assert within(T, lambda: source.pin(old), "pin").pinned == old
    newest = rewrite(origin, base, 9)
    assert within(T, source.sync, "sync").fetched == newest  # fetched, held by the pin
    repo = source.root / "repo.git"
    on_disk = sorted(p.name for p in (source.root / "trees").iterdir())
    result = within(T, source.gc, "gc")
    assert result.error is None and old in result.kept
    assert has(repo, old) and has(repo, newest) and "refs/xgen/pinned" in refs(repo)
    assert sorted(p.name for p in (source.root / "trees").iterdir()) == on_disk  # no tree is touched
    assert source.unpin()
    result = within(T, source.gc, "gc")
    assert "refs/xgen/pinned" not in refs(repo) and has(repo, old)  # still current: kept through its tree
    assert within(T, source.sync, "sync").commit == newest
    within(T, source.gc, "gc")
    assert trees.current_commit(source.root) == newest and has(repo, newest)


def test_gc_before_any_fetch_and_with_the_lock_held_elsewhere(origin, tmp_path):
    source = GitSource(GitSpec(url=f"file://{origin.bare}", ref="main", timeout=0.2), tmp_path / "state")
    assert within(T, source.gc, "gc").error is None  # no repository yet: nothing to do
    with state.locked(source.root, 1):
        out = []
        t = threading.Thread(target=lambda: out.append(source.gc()))
        t.start()
        t.join(T)
    assert out and out[0].error.startswith("another xgen-declare is syncing this source")


def test_the_collection_is_recorded_for_source_status_and_metrics(origin, tmp_path, cli):
    """The poller thread's collection lands in STATE/source/last_gc: `source status` (text and JSON) and
    /metrics show it; a later `source status` (another process, after a restart) reads the same record."""
    base = origin.head()
    clock = Clock()
    state_dir = tmp_path / "state"
    spec = GitSpec(url=f"file://{origin.bare}", ref="main", path="manifests", interval=3600)
    poll = GitPoll(spec, str(state_dir), gc_schedule=Schedule(every=3, interval=86400, clock=clock),
                   wall=lambda: 1700000000.0)
    metrics = Metrics(StateStore(tmp_path / "records"), source=lambda: poll)
    config = tmp_path / "xgen-declare.yaml"
    config.write_text(f"source:\n  git: file://{origin.bare}\n  ref: main\n  path: manifests\n")
    opts = ["--config", str(config), "--state-dir", str(state_dir)]
    assert cli("source", "status", *opts, "-o", "json").json()["last_gc"] is None
    control = Control()
    poll.start(lambda hook: None, lambda: None)
    try:
        until(lambda: poll.polls == 1, "the first poll")
        poll.tick(control)
        for n in range(1, 3):  # the third new commit fetched (the first poll's counts) makes the schedule due
            rewrite(origin, base, n)
            poll.poll_now()
            until(lambda: poll.polls == n + 1, f"poll {n + 1}")
            poll.tick(control)
        until(lambda: poll.last_gc is not None, "the collection")
        gc = poll.last_gc
    finally:
        poll.stop()
    assert gc.error is None and gc.after.bytes < gc.before.bytes
    r = cli("source", "status", *opts, "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["last_gc"] == {"at": 1700000000.0, "ok": True, "error": None,
                                   "before": {"objects": gc.before.objects, "bytes": gc.before.bytes},
                                   "after": {"objects": gc.after.objects, "bytes": gc.after.bytes},
                                   "kept": list(gc.kept)}
    assert r.json()["problems"] == []
    text = cli("source", "status", *opts)
    assert text.out.splitlines()[-1] == f"last gc:    2023-11-14 22:13:20 UTC: {gc.text()}"
    scrape = metrics.render().decode()
    assert 'xgen_source_gc_runs_total{outcome="ok"} 1.0' in scrape
    assert 'xgen_source_gc_runs_total{outcome="failed"} 0.0' in scrape
    assert "xgen_source_last_gc_timestamp 1.7e+09" in scrape
    assert f"xgen_source_repo_bytes {float(gc.after.bytes)!r}" in scrape

    (state_dir / "source" / "last_gc").write_text("{")  # damaged: named in problems (exit 1), no traceback
    r = cli("source", "status", *opts, "-o", "json")
    assert (r.code, r.json()["last_gc"], r.json()["current"]["commit"]) == (1, None, trees.current_commit(poll.root))
    assert r.json()["problems"] == [f"{state_dir / 'source' / 'last_gc'} is not a JSON object (remove it; "
                                    "xgen-declare writes it)"]
    assert "xgen_source_last_gc_timestamp 0.0" in metrics.render().decode()
