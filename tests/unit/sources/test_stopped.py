"""sources/stopped.py: which id ls-remote's listing gives the source's ref (git's order for a short name,
an annotated tag's commit), and the record of a fetch stopped at its bound: it matches only the same URL,
ref and commit at a bound no larger; a damaged record is as none."""

from __future__ import annotations

from xgen_declare.sources import stopped
from xgen_declare.sources.gitcmd import GitRunner

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
URL = "http://git.example.org/ops.git"


def test_pick_follows_git_s_order_for_a_short_name():
    listing = f"{A}\trefs/heads/main\n{B}\trefs/remotes/origin/main\n{C}\trefs/tags/v1\n{D}\trefs/tags/v1^{{}}\n"
    assert stopped.pick(listing, "main") == A
    assert stopped.pick(listing, "refs/heads/main") == A
    assert stopped.pick(listing, "v1") == D  # the annotated tag's commit
    assert stopped.pick(f"{B}\trefs/heads/v1\n{C}\trefs/tags/v1\n", "v1") == C  # a tag before a branch
    assert stopped.pick(f"{A}\tHEAD\n{B}\trefs/heads/HEAD\n", "HEAD") == A
    assert stopped.pick(listing, "dev") is None
    assert stopped.pick("garbage\n\tno id\n", "main") is None


def test_a_full_commit_id_is_its_own_answer_without_asking_the_remote(tmp_path):
    runner = GitRunner(str(tmp_path / "no-git"))  # would fail if it were run
    assert stopped.remote_commit(runner, tmp_path, URL, A) == (A, None)
    commit, res = stopped.remote_commit(runner, tmp_path, URL, "main")
    assert (commit, res.returncode) == (None, 127)  # ls-remote failed: the fetch runs as before


def test_the_record_matches_the_same_commit_at_a_bound_no_larger(tmp_path):
    assert not stopped.is_stopped(tmp_path, URL, "main", A, 1 << 20)
    stopped.remember(tmp_path, URL, "main", A, 1 << 20, now=5.0)
    assert stopped.is_stopped(tmp_path, URL, "main", A, 1 << 20)
    assert stopped.is_stopped(tmp_path, URL, "main", A, 1 << 19)   # a smaller bound stops it too
    assert not stopped.is_stopped(tmp_path, URL, "main", A, 1 << 21)  # source.max_tree_mib raised: fetch again
    assert not stopped.is_stopped(tmp_path, URL, "main", B, 1 << 20)  # the ref moved
    assert not stopped.is_stopped(tmp_path, URL, "dev", A, 1 << 20)
    assert not stopped.is_stopped(tmp_path, URL + "x", "main", A, 1 << 20)
    (tmp_path / stopped.RECORD).write_text("{")
    assert not stopped.is_stopped(tmp_path, URL, "main", A, 1 << 20)  # damaged: fetch (and record again)
