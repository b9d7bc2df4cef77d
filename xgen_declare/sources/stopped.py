"""A fetch stopped at its size bound (4 x source.max_tree_mib, gitcmd.py) is not downloaded again while
the remote ref names the same commit (issue #24): without this, every poll after the back-off would
download up to the bound again, for ever, from a remote that has not changed.

Before a fetch, `remote_commit` asks the remote which commit the ref names (`git ls-remote`, through the
same runner, so the same credentials, transports and timeout, its output bounded); a full commit id is
its own answer. When the fetch is stopped at the bound, `remember` records (URL, ref, commit, bound) in
STATE/source/stopped; while `is_stopped` matches (the same URL, ref and commit, a bound no larger than
the one that stopped it) the poll reports the same refusal without fetching. Once the ref moves, or
source.max_tree_mib is raised, the fetch runs again. If ls-remote fails, the fetch runs as it always did
(and reports the remote's error), but for a timeout: that is the poll's refusal (a remote too slow to
list one ref would not send a pack in time either); a damaged record is as none (the fetch runs). When the
ref names the commit the last fetch brought, git.py fetches nothing: the listing is the whole poll.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from xgen_declare.readers.bounded import KIB
from xgen_declare.sources import state
from xgen_declare.sources.gitcmd import GitResult, GitRunner

__all__ = ["RECORD", "is_stopped", "pick", "remember", "remote_commit"]

RECORD = "stopped"
LS_REMOTE_OUTPUT = 64 * KIB  # what ls-remote may print for one ref pattern before it is stopped
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def remote_commit(runner: GitRunner, repo: Path, url: str, ref: str) -> tuple[str | None, GitResult | None]:
    """The object the remote's `ref` names now (a full commit id: itself, without asking), and ls-remote's
    result; None when ls-remote failed or the remote has no such ref (the fetch that follows says why;
    the caller refuses a timed-out one at once: the fetch would wait as long again)."""
    if _OID.fullmatch(ref):
        return ref, None
    res = runner.run("ls-remote", url, ref, cwd=repo, max_stdout=LS_REMOTE_OUTPUT)
    return (pick(res.stdout, ref) if res.ok else None), res


def pick(listing: str, ref: str) -> str | None:
    """The id `ref` names in ls-remote's `listing`, by git's order of a short name (the ref itself, refs/,
    tags, heads, remotes); an annotated tag's commit (`^{}`) before the tag object."""
    ids = {}
    for line in listing.splitlines():
        oid, _, name = line.partition("\t")
        if _OID.fullmatch(oid):
            ids[name] = oid
    names = [ref] if ref == "HEAD" or ref.startswith("refs/") else \
        [ref, f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}", f"refs/remotes/{ref}", f"refs/remotes/{ref}/HEAD"]
    for name in names:
        found = ids.get(name + "^{}") or ids.get(name)
        if found:
            return found
    return None


def remember(root: Path, url: str, ref: str, commit: str, limit: int, now: float | None = None) -> None:
    """Record that fetching `commit` (what `ref` of `url` names) passed `limit` bytes; StateFileError when it
    cannot be written (the next poll then fetches again, as before)."""
    state.write_json(root / RECORD, {"url": url, "ref": ref, "commit": commit, "limit": limit,
                                     "at": time.time() if now is None else now})


def is_stopped(root: Path, url: str, ref: str, commit: str, limit: int) -> bool:
    """A fetch of this very commit was stopped at a bound of `limit` bytes or more: fetching it again would
    be stopped again."""
    try:
        data = state.read_json(root / RECORD)
    except state.StateFileError:
        return False
    if not data:
        return False
    recorded = data.get("limit")
    return (data.get("url"), data.get("ref"), data.get("commit")) == (url, ref, commit) \
        and isinstance(recorded, int) and recorded >= limit
