"""GitPoll (reconciler/gitpoll.py) over a bare repository on file://: the tick hook serves a new current
commit and tells the daemon; the poller thread polls at once on poll_now(), never syncs again before the
loop serves the last switch, and logs, counts and publishes a refusal once per change. Every wait is
bounded (`within` / a deadline)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from xgen_declare.config import Config
from xgen_declare.reconciler.gitpoll import GitPoll, recorded_spec, spec_json
from xgen_declare.sources import trees
from xgen_declare.sources.poller import Outcome, PollResult
from xgen_declare.sources.results import Refusal
from xgen_declare.sources.spec import GitSpec
from xgen_declare.testing.gitrepos import WorkRepo

T = 20


def manifest(name: str, ctx: int = 2048) -> str:
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n  model_path: /m/{name}.gguf\n" \
           f"  ctx_size: {ctx}\n"


class Control:
    def __init__(self, config: Config | None = None) -> None:
        self.changed: list[str] = []
        self.env = SimpleNamespace(config=config or Config())

    def file_changed(self, path: str = "") -> None:
        self.changed.append(path)


def until(pred, what: str, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def repo(tmp_path):
    r = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    r.commit({"manifests/a.yaml": manifest("a")}, "first")
    r.push()
    return r


@pytest.fixture
def poll(tmp_path, repo):
    spec = GitSpec(url=f"file://{repo.bare}", ref="main", path="manifests", interval=3600)
    gp = GitPoll(spec, str(tmp_path / "state"))
    events: list[tuple[str, dict]] = []
    gp.add_sink(lambda type_, **data: events.append((type_, data)))
    gp.events = events
    yield gp
    gp.stop()


def test_the_tick_serves_the_current_commit_once_and_marks_the_daemon_dirty(poll, repo):
    control = Control()
    poll.tick(control)  # nothing fetched yet: nothing to serve
    assert (control.changed, poll.serving_commit()) == ([], None)
    result = poll.poller.poll_once()
    assert result.new == repo.head()
    poll.tick(control)
    assert poll.serving_commit() == repo.head()
    assert control.changed == [f"git source: commit {repo.head()[:12]}"]
    assert poll.manifests_dir == str(poll.root / "serving" / "manifests")
    assert sorted(p.name for p in (poll.root / "serving" / "manifests").iterdir()) == ["a.yaml"]
    poll.tick(control)
    assert len(control.changed) == 1
    assert poll.events == [("source_switched", {"old": None, "new": repo.head(), "url": poll.spec.url,
                                                "ref": "main", "signature": None})]


def test_the_thread_polls_on_poll_now_and_waits_for_the_loop_to_serve_a_switch(poll, repo):
    hooks, nudged = [], []
    poll.start(hooks.append, lambda: nudged.append(1))
    assert hooks == [poll.tick]
    assert list(Path(poll.manifests_dir).iterdir()) == []  # an empty dir until a commit is served, not a missing one
    until(lambda: poll.polls == 1, "the first poll")
    first = repo.head()
    assert (trees.current_commit(poll.root), poll.serving_commit()) == (first, None)
    until(lambda: nudged, "the loop nudged")
    repo.commit({"manifests/a.yaml": manifest("a", 4096)}, "second")
    repo.push()
    poll.poll_now()
    time.sleep(0.5)  # the thread holds the poll: the loop has not served `first` yet
    assert poll.polls == 1
    poll.tick(Control())
    assert [p.name for p in Path(poll.manifests_dir).iterdir()] == ["a.yaml"]
    until(lambda: poll.polls == 2, "the poll once the switch is served")
    assert (trees.current_commit(poll.root), poll.serving_commit()) == (repo.head(), first)
    # the tree the daemon serves is kept while current moves on (trees.py's GC)
    assert (poll.root / "trees" / first / "manifests" / "a.yaml").is_file()
    assert (poll.failures_total, poll.last_success is not None) == (0, True)


def test_start_serves_a_commit_synced_while_no_daemon_ran(poll, repo):
    poll.poller.poll_once()  # as `xgen-declare sync` would, before `run`
    assert poll.serving_commit() is None
    poll.start(lambda hook: None, lambda: None)
    assert poll.serving_commit() == repo.head()  # at once, before the loop's first pass


def test_a_refusal_is_logged_counted_and_published_once_per_change(poll, repo, caplog):
    caplog.set_level(logging.INFO, "xgen_declare.reconciler.gitpoll")
    poll.poller.poll_once()
    poll.tick(Control())
    good = repo.head()
    poll.source.spec = GitSpec(url=poll.spec.url, ref="no-such-branch", path="manifests", interval=3600)
    for _ in range(3):
        poll._record(poll.poller.poll_once())
    assert poll.failures_total == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"source {poll.spec.url}: source.ref: 'no-such-branch' does not exist in {poll.spec.url} "
                        f"(check the branch, tag or commit) (ref_missing); {good[:12]} keeps running"]
    refused = [data for type_, data in poll.events if type_ == "source_refused"]
    assert refused == [{"commit": None, "current": good, "reason": "ref_missing",
                        "error": f"source.ref: 'no-such-branch' does not exist in {poll.spec.url} (check the "
                                 "branch, tag or commit)"}]
    assert poll.serving_commit() == good


def test_a_fetch_error_differing_only_in_its_numbers_is_logged_once(poll, caplog):
    caplog.set_level(logging.WARNING, "xgen_declare.reconciler.gitpoll")
    for ms in (0, 3, 12):
        poll._record(PollResult(Outcome.REFUSED, None, None, None, Refusal.FETCH_FAILED,
                                f"cannot fetch {poll.spec.url}: Failed to connect after {ms} ms", failures=1,
                                next_in=60))
    assert len(caplog.records) == 1
    assert [t for t, _ in poll.events] == ["source_refused"]
    assert poll.failures_total == 3


def test_a_source_edited_in_the_running_config_is_reported_once(poll, caplog):
    caplog.set_level(logging.WARNING, "xgen_declare.reconciler.gitpoll")
    same = Config.model_validate({"source": {"git": poll.spec.url, "ref": "main", "path": "manifests",
                                             "interval": 3600}})
    poll.tick(Control(same))
    assert caplog.records == []
    edited = Config.model_validate({"source": {"git": "file:///srv/other.git"}})
    edited.file = "/etc/xgen/host.yaml"
    control = Control(edited)
    poll.tick(control)
    poll.tick(control)
    assert [r.getMessage() for r in caplog.records] == [
        f"source: /etc/xgen/host.yaml changed `source:`; this daemon keeps following {poll.spec.url} until it is "
        "restarted"]


def test_the_spec_round_trips_through_daemon_json(poll):
    spec = GitSpec(url="https://git.example.org/ops/llm.git", ref="v1", path="m", interval=5,
                   allowed_signers="/etc/xgen/allowed", webhook_secret_file="/etc/xgen/hook")
    assert recorded_spec({"source": spec_json(spec)}) == spec
    assert recorded_spec({}) is None
    assert recorded_spec({"source": {"url": "x", "bogus": 1}}) is None
    assert recorded_spec({"source": "git+https://x"}) is None


def test_a_source_event_sink_that_raises_is_logged_and_the_others_still_get_the_event(poll, repo, caplog):
    """processes/hooks.py Registry, as GitPoll uses it (the API adds and removes its sink from its thread)."""
    def bad(type_, **data):
        raise RuntimeError("sink broke")

    poll.sinks.remove(poll.sinks.snapshot()[0])  # the fixture's sink goes last, after the one that raises
    poll.add_sink(bad)
    poll.add_sink(lambda type_, **data: poll.events.append((type_, data)))
    poll.poller.poll_once()
    poll.tick(Control())
    assert [t for t, _ in poll.events] == ["source_switched"]
    assert "source event sink failed" in caplog.text and "sink broke" in caplog.text
    poll.remove_sink(bad)
    poll.remove_sink(bad)
    assert len(poll.sinks) == 1
