"""Does a fetched commit descend from the current one? (a fast-forward, or a rewind by force push)

The source's repository is shallow (`--depth=1`): the new commit arrives without its parents. To
answer, the history since the current commit's date is fetched (`--shallow-since`, bounded by the
same timeout and only as deep as that date), then `git merge-base --is-ancestor` decides. When no
commit on the ref is dated after the current one (a force push back to an old, perhaps vulnerable,
signed commit; or new commits from a committer whose clock is behind), git says "no commits selected"
and the ref's last 64 commits are fetched instead: the answer is yes only if the current commit is
among their ancestors.

A force-pushed branch is followed by default (issue #24: the branch is the truth). Refusing a rewind is
what a signature check alone cannot do (an old commit is still validly signed): `source.allow_force_push:
false` refuses rewritten history; `pin` rolls back on purpose.
"""

from __future__ import annotations

from pathlib import Path

from xgen_declare.sources.gitcmd import GitResult, GitRunner

__all__ = ["DEEPEN_REF", "descends"]

DEEPEN_REF = "refs/xgen/deepen"
FALLBACK_DEPTH = 64


def descends(runner: GitRunner, repo: Path, url: str, ref: str, current: str, new: str) -> tuple[bool, GitResult | None]:
    """(True, None) when `new` descends from `current`; (False, None) when it does not; (False, res) when
    the history could not be fetched (`res` is the failed fetch, for the caller's error)."""
    if _is_ancestor(runner, repo, current, new):
        return True, None
    date = runner.run("log", "-1", "--format=%ct", current, "--", cwd=repo)
    if not date.ok or not date.stdout.strip().isdigit():
        return False, None  # the current commit is gone from the repository: nothing to compare with
    since = int(date.stdout.strip()) - 1
    res = _deepen(runner, repo, url, ref, f"--shallow-since={since}")
    if not res.ok and not res.timed_out and "no commits selected" in res.stderr:
        # nothing on the ref is dated after the current commit: history went back, or the new commits
        # carry dates from a skewed clock; the last FALLBACK_DEPTH commits tell the two apart
        res = _deepen(runner, repo, url, ref, f"--depth={FALLBACK_DEPTH}")
    if not res.ok:
        return False, res
    return _is_ancestor(runner, repo, current, new), None


def _deepen(runner: GitRunner, repo: Path, url: str, ref: str, how: str) -> GitResult:
    return runner.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--force", how, url,
                      f"+{ref}:{DEEPEN_REF}", cwd=repo)


def _is_ancestor(runner: GitRunner, repo: Path, old: str, new: str) -> bool:
    return runner.run("merge-base", "--is-ancestor", old, new, cwd=repo).returncode == 0
