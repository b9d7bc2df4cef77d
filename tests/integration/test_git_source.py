"""GitSource (xgen_declare/sources/git.py) against real repositories: a bare repo over file:// and the test
git HTTP server. Fetch, switch atomically, follow a force push, refuse unsigned or stranger-signed
commits while the last verified one stays current, a ref that does not exist, paths outside the repo,
a remote that goes away and comes back. Every sync is bounded by `within`."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from xgen_declare.sources import gitcmd
from xgen_declare.sources.git import GitSource, Refusal, SyncResult
from xgen_declare.sources.poller import Outcome, Poller
from xgen_declare.sources.spec import GitSpec
from xgen_declare.testing.deadline import within
from xgen_declare.testing.gitrepos import SshSigner, WorkRepo, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer

T = 60


@pytest.fixture
def origin(tmp_path):
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    repo.commit({"manifests/a.yaml": "a: 1\n", "README.md": "ops\n"}, "first")
    repo.push()
    return repo


def sync(source: GitSource) -> SyncResult:
    return within(T, source.sync, "GitSource.sync")


def files(result: SyncResult) -> dict[str, str]:
    assert result.manifests is not None
    return {p.name: p.read_text() for p in sorted(result.manifests.iterdir())}


def test_fetch_over_file_url_and_switch_atomically(origin, tmp_path):
    spec = GitSpec(url=f"file://{origin.bare}", ref="main", path="manifests")
    source = GitSource(spec, tmp_path / "state")
    first = sync(source)
    assert first == SyncResult(origin.head(), origin.head(), True, None,
                               tmp_path / "state" / "source" / "trees" / origin.head() / "manifests")
    assert files(first) == {"a.yaml": "a: 1\n"}
    assert os.readlink(tmp_path / "state" / "source" / "current") == f"trees/{origin.head()}"

    again = sync(source)
    assert (again.commit, again.changed, again.error) == (first.commit, False, None)

    for n in range(2, 5):
        origin.commit({f"manifests/m{n}.yaml": f"m: {n}\n"}, f"commit {n}")
        origin.push()
        res = sync(source)
        assert res.changed and res.commit == origin.head() and f"m{n}.yaml" in files(res)
    trees = sorted(p.name for p in (tmp_path / "state" / "source" / "trees").iterdir())
    assert len(trees) == 2 and origin.head() in trees  # the current tree and the one before it
    assert GitSource(spec, tmp_path / "state").current().commit == origin.head()  # after a restart


def test_a_reader_never_sees_a_half_updated_tree(origin, tmp_path):
    many_a = {f"manifests/a{i}.yaml": "a\n" for i in range(40)}
    commit_a = origin.commit(many_a, "forty a")
    origin.push()
    many_b = {**{k: None for k in many_a}, **{f"manifests/b{i}.yaml": "b\n" for i in range(40)}}
    commit_b = origin.commit(many_b, "forty b")
    expected = {commit_a: {"a.yaml", *(Path(k).name for k in many_a)},
                commit_b: {"a.yaml", *(f"b{i}.yaml" for i in range(40))}}
    root = tmp_path / "state" / "source"
    seen: list[str] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                names = set(os.listdir(root / "current" / "manifests"))
            except FileNotFoundError:
                seen.append("`current` was missing for a moment")
                continue
            if names not in expected.values():
                seen.append(f"a mixed tree of {len(names)} files")

    spec_a = GitSpec(url=f"file://{origin.bare}", ref=commit_a, path="manifests")
    spec_b = replace(spec_a, ref=commit_b)
    origin.push()
    assert sync(GitSource(spec_a, tmp_path / "state")).commit == commit_a
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for i in range(1, 7):
            res = sync(GitSource(spec_b if i % 2 else spec_a, tmp_path / "state"))
            assert res.ok, res.error
    finally:
        stop.set()
        t.join(10)
    assert seen == []


def test_a_force_push_is_followed_and_refused_only_when_not_allowed_over_http(origin, tmp_path):
    first = origin.head()
    with GitHttpServer(tmp_path / "srv") as srv:
        spec = GitSpec(url=srv.url("config.git"), ref="main", path="manifests", allow_force_push=False)
        source = GitSource(spec, tmp_path / "state")
        origin.commit({"manifests/a.yaml": "a: 2\n"}, "second")
        second = origin.head()
        origin.push()
        assert files(sync(source)) == {"a.yaml": "a: 2\n"}
        origin.reset_hard(first)
        rewritten = origin.commit({"manifests/a.yaml": "a: 3\n"}, "rewritten")
        origin.push(force=True)
        refused = sync(source)
        origin.reset_hard(first)
        origin.push(force=True)  # back to an older commit, itself an ancestor of the current one
        rewound = sync(source)
        followed = sync(GitSource(replace(spec, allow_force_push=True), tmp_path / "state"))
    assert (refused.commit, refused.fetched, refused.reason) == (second, rewritten, Refusal.NOT_FAST_FORWARD)
    assert refused.error == (f"commit {rewritten[:12]} does not descend from the current commit {second[:12]} (the "
                             "branch was force-pushed to other or older history); it is not applied (set "
                             "source.allow_force_push: true to follow rewritten history, or roll back on purpose "
                             "with `xgen-declare pin COMMIT`)")
    assert files(refused) == {"a.yaml": "a: 2\n"}
    assert (rewound.commit, rewound.fetched, rewound.reason) == (second, first, Refusal.NOT_FAST_FORWARD)
    assert (followed.commit, followed.changed, files(followed)) == (first, True, {"a.yaml": "a: 1\n"})


def test_a_fast_forward_dated_before_the_current_commit_is_followed(origin, tmp_path, monkeypatch):
    spec = GitSpec(url=f"file://{origin.bare}", ref="main", path="manifests", allow_force_push=False)
    source = GitSource(spec, tmp_path / "state")
    first = sync(source).commit
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")  # a committer whose clock is years behind
    child = origin.commit({"manifests/a.yaml": "a: 2\n"}, "child of the current commit, dated long before it")
    origin.push()
    res = sync(source)
    assert (res.before, res.commit, res.changed, res.error) == (first, child, True, None)
    origin.reset_hard(first)
    sibling = origin.commit({"manifests/a.yaml": "a: 3\n"}, "not a child of the current one, also dated 2020")
    origin.push(force=True)
    res = sync(source)
    assert (res.commit, res.fetched, res.reason) == (child, sibling, Refusal.NOT_FAST_FORWARD)


def test_a_token_from_a_file_and_a_wrong_one(origin, tmp_path):
    token = tmp_path / "token"
    token.write_text("right\n")
    with GitHttpServer(tmp_path / "srv", token="right") as srv:
        spec = GitSpec(url=srv.url("config.git"), ref="main", token_file=str(token))
        source = GitSource(spec, tmp_path / "state")
        assert sync(source).commit == origin.head()
        anonymous = sync(GitSource(replace(spec, token_file=None), tmp_path / "anon"))
        token.write_text("wrong\n")
        origin.commit({"manifests/a.yaml": "a: 2\n"}, "second")
        origin.push()
        res = sync(source)
    assert res.commit != origin.head() and res.fetched is None
    assert res.error == (f"cannot fetch {srv.url('config.git')}: the server refused the token of source.token_file "
                         "(or --token-file; HTTP 401: check the token and its rights); the last good commit stays "
                         "current")
    assert "wrong" not in res.error
    assert anonymous.error == (f"cannot fetch {srv.url('config.git')}: the server asks for credentials "
                               "(HTTP 401: set source.token_file, or --token-file FILE with a git+URL); the last "
                               "good commit stays current")


def test_unsigned_and_stranger_signed_commits_are_refused(origin, tmp_path):
    alice = SshSigner.generate(tmp_path / "keys", "alice@example.org")
    mallory = SshSigner.generate(tmp_path / "keys", "mallory@example.org")
    allowed = write_allowed_signers(tmp_path / "allowed_signers", [alice])
    spec = GitSpec(url=f"file://{origin.bare}", ref="main", path="manifests", allowed_signers=str(allowed))
    source = GitSource(spec, tmp_path / "state")

    unsigned_first = sync(source)
    assert unsigned_first.commit is None and unsigned_first.error == (
        f"commit {origin.head()[:12]} is not signed; it is not applied (sign it with a key listed in allowed_signers)")

    good = origin.commit({"manifests/a.yaml": "a: good\n"}, "signed by alice", signer=alice)
    origin.push()
    assert sync(source).commit == good

    origin.commit({"manifests/a.yaml": "a: unsigned\n"}, "unsigned")
    origin.push()
    res = sync(source)
    assert (res.commit, res.fetched, res.changed) == (good, origin.head(), False)
    assert res.error.endswith("is not signed; it is not applied (sign it with a key listed in allowed_signers)")
    assert files(res) == {"a.yaml": "a: good\n"}

    stranger = origin.commit({"manifests/a.yaml": "a: mallory\n"}, "signed by mallory", signer=mallory)
    origin.push()
    res = sync(source)
    assert res.commit == good and res.fetched == stranger
    assert res.error.startswith(f"commit {stranger[:12]} is signed by a key that is not in allowed_signers (SHA256:")
    assert files(res) == {"a.yaml": "a: good\n"}

    allowed.unlink()
    res = sync(source)
    assert res.commit == good and res.error == (f"source.verify.allowed_signers: cannot read {allowed}: "
                                                "No such file or directory (check the path and permissions)")


def test_a_ref_that_does_not_exist(origin, tmp_path):
    res = sync(GitSource(GitSpec(url=f"file://{origin.bare}", ref="nosuch"), tmp_path / "state"))
    assert res == SyncResult(None, None, False, f"source.ref: 'nosuch' does not exist in file://{origin.bare} "
                                                "(check the branch, tag or commit)", None, Refusal.REF_MISSING)


def test_paths_outside_the_repository(origin, tmp_path):
    good = origin.head()
    state = tmp_path / "state"
    assert sync(GitSource(GitSpec(url=f"file://{origin.bare}", path="manifests"), state)).commit == good

    os.symlink("/etc", origin.path / "linked")
    origin.commit({}, "a directory link out of the repo")
    origin.push()
    res = sync(GitSource(GitSpec(url=f"file://{origin.bare}", path="linked"), state))
    assert res.commit == good and res.error == (f"source.path: 'linked' is a symlink in commit {origin.head()[:12]}, "
                                                "not a directory (name the directory that holds the manifests)")
    res = sync(GitSource(GitSpec(url=f"file://{origin.bare}", path="manifests"), state))
    assert res.commit == good and res.error.startswith(f"commit {origin.head()[:12]}: 'linked' points outside "
                                                       "the repository (")
    assert res.error.endswith("); it is not applied (remove the link from the repository)")
    assert not [p for p in (state / "source" / "trees").iterdir() if p.name != good]  # no half tree left

    os.unlink(origin.path / "linked")
    origin.commit({"manifests/a.yaml": "a: 2\n"}, "no link")
    origin.push()
    res = sync(GitSource(GitSpec(url=f"file://{origin.bare}", path="nowhere"), state))
    assert res.commit == good and res.error == (f"source.path: 'nowhere' does not exist in commit "
                                                f"{origin.head()[:12]} (check the path, relative to the "
                                                "repository's top)")


def test_a_tree_over_the_size_limit_is_refused(origin, tmp_path):
    origin.commit({"manifests/big.yaml": "x" * 300_000}, "big")
    origin.push()
    res = sync(GitSource(GitSpec(url=f"file://{origin.bare}", max_tree_bytes=256 * 1024), tmp_path / "state"))
    assert res.commit is None and res.error == (
        f"commit {origin.head()[:12]} holds more than 0.25 MiB of files, the limit for a source (keep models out "
        "of the config repo, or raise source.max_tree_mib)")


def test_a_listing_cut_at_the_output_limit_is_refused(origin, tmp_path, monkeypatch):
    monkeypatch.setattr(gitcmd, "OUTPUT_LIMIT", 64)  # seam: the cut a 4 MiB listing would meet
    res = sync(GitSource(GitSpec(url=f"file://{origin.bare}"), tmp_path / "state"))
    assert res.commit is None and res.error == (f"commit {origin.head()[:12]} holds too many files for a source "
                                                "(its listing is over 0 MiB); keep the config repository small")


def test_key_token_and_signer_files_that_are_fifos_do_not_hang_a_sync(origin, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    url = f"file://{origin.bare}"
    for spec, field in ((GitSpec(url=url, token_file=str(fifo)), "token_file"),
                        (GitSpec(url=url, ssh_key_file=str(fifo)), "ssh_key_file"),
                        (GitSpec(url=url, known_hosts=str(fifo)), "known_hosts"),
                        (GitSpec(url=url, allowed_signers=str(fifo)), "verify.allowed_signers")):
        res = within(T, GitSource(spec, tmp_path / field).sync, f"a sync with a FIFO as {field}", release=fifo)
        assert res.commit is None and res.error == (f"source.{field}: {fifo}: is a FIFO (named pipe), not a "
                                                    "regular file (point it at a regular file)")


def test_two_syncs_at_once_are_one_after_the_other(origin, tmp_path):
    source = GitSource(GitSpec(url=f"file://{origin.bare}", path="manifests"), tmp_path / "state")
    results: list[SyncResult] = []
    threads = [threading.Thread(target=lambda: results.append(source.sync())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    assert [r.commit for r in results] == [origin.head()] * 3 and all(r.ok for r in results)
    assert sum(r.changed for r in results) == 1
    assert [p.name for p in (tmp_path / "state" / "source" / "trees").iterdir()] == [origin.head()]


def test_a_remote_that_goes_away_and_comes_back(origin, tmp_path):
    with GitHttpServer(tmp_path / "srv") as srv:
        source = GitSource(GitSpec(url=srv.url("config.git"), ref="main", path="manifests"), tmp_path / "state")
        first = sync(source)
        origin.commit({"manifests/a.yaml": "a: 2\n"}, "second")
        origin.push()
        srv.refuse(503)
        refused = sync(source)
        srv.refuse(None)
        srv.go_away()
        gone = sync(source)
        srv.come_back()
        back = sync(source)
    for res in (refused, gone):
        assert (res.commit, res.fetched, res.changed) == (first.commit, None, False)
        assert files(res) == {"a.yaml": "a: 1\n"}
        assert res.error.startswith(f"cannot fetch {srv.url('config.git')}: ")
        assert res.error.endswith("; the last good commit stays current")
    assert "503" in refused.error and "Failed to connect" in gone.error
    assert (back.commit, back.changed, files(back)) == (origin.head(), True, {"a.yaml": "a: 2\n"})


def test_a_remote_that_hangs_is_cut_off_by_the_timeout(origin, tmp_path):
    with GitHttpServer(tmp_path / "srv") as srv:
        source = GitSource(GitSpec(url=srv.url("config.git"), timeout=2), tmp_path / "state")
        first = sync(source)
        srv.stall()
        res = sync(source)
        # a commit id is fetched without asking where a ref is: the fetch itself meets the timeout
        pinned = sync(GitSource(GitSpec(url=srv.url("config.git"), ref="e" * 40, timeout=2), tmp_path / "state2"))
    assert (res.commit, res.fetched) == (first.commit, None)
    # the remote is asked where the ref is first (sources/stopped.py): that is what meets the timeout
    assert res.error == (f"cannot fetch {srv.url('config.git')}: git ls-remote did not finish in 2 s (is the remote "
                         "slow or huge? source.timeout)")
    assert pinned.error == (f"cannot fetch {srv.url('config.git')}: git fetch did not finish in 2 s (is the remote "
                            "slow or huge? source.timeout)")


def test_a_pinned_commit_stays_after_new_pushes(origin, tmp_path):
    pinned = origin.head()
    origin.commit({"manifests/a.yaml": "a: 2\n"}, "second")
    origin.push()
    with GitHttpServer(tmp_path / "srv") as srv:
        res = sync(GitSource(GitSpec(url=srv.url("config.git"), ref=pinned, path="manifests"), tmp_path / "state"))
    assert (res.commit, files(res)) == (pinned, {"a.yaml": "a: 1\n"})


def test_a_fetch_past_four_times_the_tree_limit_is_stopped_and_leaves_nothing(origin, tmp_path, monkeypatch):
    monkeypatch.setattr(gitcmd, "WATCH_EVERY", 0.002)  # seam: a local fetch of 8 MB is over in a blink
    origin.commit({"blob.txt": os.urandom(8 * 1024 * 1024).hex()}, "a huge file")  # 8 MB once packed
    origin.push()
    source = GitSource(GitSpec(url=f"file://{origin.bare}", max_tree_bytes=256 * 1024), tmp_path / "state")
    res = sync(source)
    assert (res.commit, res.fetched, res.reason) == (None, None, Refusal.FETCH_FAILED)
    assert res.error == (f"cannot fetch file://{origin.bare}: the fetch of HEAD at {origin.head()[:12]} passed 1 MiB "
                         "and was stopped (4 x source.max_tree_mib); it is not downloaded again until HEAD moves; "
                         "keep models and large files out of the config repository, or raise source.max_tree_mib; "
                         "the last good commit stays current")
    packs = tmp_path / "state" / "source" / "repo.git" / "objects"
    assert sum(p.stat().st_size for p in packs.rglob("*") if p.is_file()) < 1024 * 1024
    assert not [p for p in packs.rglob("tmp_*")]
    # the killed fetch left shallow.lock and a temporary pack: the next sync removes them (under the lock)
    ok = sync(GitSource(GitSpec(url=f"file://{origin.bare}", max_tree_bytes=64 * 1024 * 1024), tmp_path / "state"))
    assert (ok.commit, ok.error) == (origin.head(), None), ok.error  # the limit raised: fetched whole


def test_an_oversized_ref_is_not_downloaded_again_until_it_moves(origin, tmp_path, monkeypatch):
    """Polls of a ref whose fetch was stopped at the bound cost the server an ls-remote, not another 1 MiB;
    the same refusal (with the commit) is reported; a small commit pushed on top is fetched and applied."""
    monkeypatch.setattr(gitcmd, "WATCH_EVERY", 0.002)
    good = origin.head()
    with GitHttpServer(tmp_path / "srv") as srv:
        spec = GitSpec(url=srv.url("config.git"), ref="main", path="manifests", max_tree_bytes=256 * 1024)
        poller = Poller(GitSource(spec, tmp_path / "state"))
        assert within(T, poller.poll_once, "poll").new == good
        huge = origin.commit({"blob.txt": os.urandom(8 * 1024 * 1024).hex()}, "a huge file")
        origin.push()
        sent = srv.sent_bytes
        first = within(T, poller.poll_once, "poll")
        assert srv.sent_bytes - sent > 1024 * 1024  # the fetch ran up to the bound (1 MiB) and was stopped
        error = (f"cannot fetch {srv.url('config.git')}: the fetch of main at {huge[:12]} passed 1 MiB and was "
                 "stopped (4 x source.max_tree_mib); it is not downloaded again until main moves; keep models and "
                 "large files out of the config repository, or raise source.max_tree_mib; the last good commit "
                 "stays current")
        assert (first.outcome, first.new, first.reason, first.error) == (Outcome.REFUSED, good,
                                                                         Refusal.FETCH_FAILED, error)
        sent = srv.sent_bytes
        for _ in range(4):
            again = within(T, poller.poll_once, "poll")
            assert (again.outcome, again.new, again.reason, again.error) == (Outcome.REFUSED, good,
                                                                             Refusal.FETCH_FAILED, error)
        assert srv.sent_bytes - sent < 4 * 8 * 1024, srv.sent_bytes - sent  # four ls-remotes, no pack
        packs = tmp_path / "state" / "source" / "repo.git" / "objects"
        assert sum(p.stat().st_size for p in packs.rglob("*") if p.is_file()) < 1024 * 1024

        small = origin.commit({"blob.txt": None, "manifests/a.yaml": "a: 2\n"}, "the huge file goes")
        origin.push()
        ok = within(T, poller.poll_once, "poll")
        assert (ok.outcome, ok.new, ok.error) == (Outcome.SWITCHED, small, None)
        assert (tmp_path / "state" / "source" / "current" / "manifests" / "a.yaml").read_text() == "a: 2\n"


def test_a_poll_of_an_unchanged_ref_lists_it_and_fetches_nothing(origin, tmp_path):
    """ls-remote runs before each fetch (the size-bound record needs the commit); when the ref names the
    commit the last fetch brought, that answer is the poll's: no fetch negotiation follows, so a poll costs
    the server what one `git ls-remote` does; a moved ref is fetched."""
    good = origin.head()
    with GitHttpServer(tmp_path / "srv") as srv:
        spec = GitSpec(url=srv.url("config.git"), ref="main", path="manifests")
        poller = Poller(GitSource(spec, tmp_path / "state"))
        assert within(T, poller.poll_once, "poll").new == good
        before = len(srv.requests)
        gitcmd.GitRunner(timeout=T).run("ls-remote", srv.url("config.git"), "main", cwd=tmp_path)
        one_listing = len(srv.requests) - before
        for _ in range(3):
            before = len(srv.requests)
            again = within(T, poller.poll_once, "poll")
            assert (again.outcome, again.new, again.error) == (Outcome.UNCHANGED, good, None)
            assert len(srv.requests) - before == one_listing, srv.requests[before:]
        moved = origin.commit({"manifests/a.yaml": "a: 3\n"}, "moved")
        origin.push()
        ok = within(T, poller.poll_once, "poll")
        assert (ok.outcome, ok.new, ok.error) == (Outcome.SWITCHED, moved, None)
