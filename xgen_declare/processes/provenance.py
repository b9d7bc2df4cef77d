"""Provenance: which manifest a process was started from, and which commit of the config repo.

Taken when a process is spawned ("apply time") and stored in its record:

    file     the manifest file
    sha256   the SHA-256 of the file's bytes then (compare with `sha256sum FILE`)
    commit   HEAD of the git work tree that holds the file (None outside git, or git missing); for a
             manifest served from the git source (sources/), the commit whose tree holds it
    dirty    the file differs from that commit (modified, staged, untracked or ignored); None outside git;
             False for a file of a source's tree (extracted from that commit)

git runs as argv (never a shell), with a timeout, `GIT_OPTIONAL_LOCKS=0` (a status never takes the
index lock a user's own git command may need) and no pager or prompt. Any failure of git (not a work
tree, no commit yet, "dubious ownership", timeout) means "not in git": provenance never stops a start.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import opened
from xgen_declare.sources.trees import commit_of

GIT_TIMEOUT = 5.0

# argv, cwd -> stdout, or None when git failed (the seam for tests)
GitRunner = Callable[[list[str], str], "str | None"]


def run_git(args: list[str], cwd: str) -> str | None:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", LC_ALL="C")
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")


@dataclass(frozen=True)
class Provenance:
    file: str | None = None
    sha256: str | None = None
    commit: str | None = None
    dirty: bool | None = None

    def to_json(self) -> dict:
        """{"file", "sha256", "commit", "dirty"}: the record's `provenance` and a history entry's fields."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> "Provenance | None":
        """What a record holds; None when it holds none. A value of the wrong type reads as unknown (None),
        never as an error: an old or hand-edited record is still adopted."""
        if not isinstance(data, Mapping) or not data:  # {}: none either
            return None
        dirty = data.get("dirty")
        return cls(file=_text(data.get("file")), sha256=_text(data.get("sha256")), commit=_text(data.get("commit")),
                   dirty=dirty if isinstance(dirty, bool) else None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def file_sha256(path: str) -> str | None:
    h = hashlib.sha256()
    try:  # a FIFO or a device named as the manifest: refused at once, never waited on or read forever
        with opened(path) as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
    except (OSError, FileRefused):
        return None
    return h.hexdigest()


def of_file(path: str | None, git: GitRunner = run_git) -> Provenance:
    """The provenance of the manifest `path` now (None: a model without a file)."""
    if not path:
        return Provenance()
    path = os.path.abspath(path)
    sha = file_sha256(path)
    served = commit_of(path)
    if served is not None:  # a tree of the git source: never ask git about the directories around the state dir
        return Provenance(path, sha, served, False)
    where = os.path.dirname(path)
    head = git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], where) if os.path.isdir(where) else None
    commit = head.strip() if head else None
    if not commit:
        return Provenance(path, sha)
    status = git(["status", "--porcelain=v1", "-z", "--ignored=matching", "--untracked-files=all", "--",
                  os.path.basename(path)], where)
    dirty = None if status is None else bool(status.strip("\x00").strip())
    return Provenance(path, sha, commit, dirty)
