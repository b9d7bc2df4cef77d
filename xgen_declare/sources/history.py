"""Does a fetched commit descend from the current one? (a fast-forward, or a rewind by force push)

The source's repository is shallow (`--depth=1`): the new commit arrives without its parents. To
answer, the history since the current commit's date is fetched (`--shallow-since`, bounded by the
same timeout and only as deep as that date), then `git merge-base --is-ancestor` decides. A commit
pushed over older history (a force push back to an old, perhaps vulnerable, signed commit) has no
commits after the current one's date: git says "no commits selected", and the answer is no.

Refusing a rewind is what a signature check alone cannot do: an old commit is still validly signed.
`source.allow_force_push: true` follows rewritten history instead; `source pin` rolls back on purpose.
"""

from __future__ import annotations

from pathlib import Path

from xgen_declare.sources.gitcmd import GitResult, GitRunner

__all__ = ["DEEPEN_REF", "descends"]

DEEPEN_REF = "refs/xgen/deepen"


def descends(runner: GitRunner, repo: Path, url: str, ref: str, current: str, new: str) -> tuple[bool, GitResult | None]:
    """(True, None) when `new` descends from `current`; (False, None) when it does not; (False, res) when
    the history could not be fetched (`res` is the failed fetch, for the caller's error)."""
    if _is_ancestor(runner, repo, current, new):
        return True, None
    date = runner.run("log", "-1", "--format=%ct", current, "--", cwd=repo)
    if not date.ok or not date.stdout.strip().isdigit():
        return False, None  # the current commit is gone from the repository: nothing to compare with
    since = int(date.stdout.strip()) - 1
    res = runner.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--force",
                     f"--shallow-since={since}", url, f"+{ref}:{DEEPEN_REF}", cwd=repo)
    if not res.ok and not res.timed_out and "no commits selected" in res.stderr:
        return False, None  # nothing on the ref is newer than the current commit: history went back
    if not res.ok:
        return False, res
    return _is_ancestor(runner, repo, current, new), None


def _is_ancestor(runner: GitRunner, repo: Path, old: str, new: str) -> bool:
    return runner.run("merge-base", "--is-ancestor", old, new, cwd=repo).returncode == 0
