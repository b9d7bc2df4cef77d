"""Partial downloads in the store, for `store gc`: which may go, and their removal under the writer's lock.

Two kinds, told apart by name (store/scan.py reports the same for `doctor`):
- `blobs/<etag>.incomplete` (a hub repository) and `xgen-urls/blobs/<sha256>.incomplete`: the store's own,
  resumed by the next fetch (store/download.py, store/url.py). A hub one is xgen-declare's when the ledger
  names it (store/download.py notes a partial before it writes one; store/ledger.py); one it does not name
  (an older huggingface_hub writes the same name, as did xgen-declare before it noted partials) cannot be
  attributed. A URL one is ours by its directory.
- `blobs/<etag>.<8 hex>.incomplete`: one huggingface_hub 1.x/2.x left when its process died; never ours,
  never resumed (each download names a new one).

A partial stays while a manifest wants its source: a hub source wants every partial of its repository (the
file a partial belongs to is known only from the hub: the store keeps no listing of it before the file is
complete, so the whole repository is kept, never less), a URL source the partial of its sha256. A partial of
huggingface_hub's is never resumed: with --all it goes whoever wants the repository.

A download running now, in this process or another (`pull`, the daemon's fetch workers, huggingface_hub in
vLLM), holds the blob's lock, `STORE/.locks/<repo dir>/<etag>.lock` (flock, huggingface_hub's own; store/url.py
takes `.locks/xgen-urls/<sha256>.lock`): gc tries it without waiting and keeps the lock while it removes the
file, so no writer starts meanwhile; a lock it cannot take means the partial is kept. Never a guess by age.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from xgen_declare.store.listing import repo_dirs, repo_name

__all__ = ["Partial", "list_partials", "collect_partials", "lock_path", "locked", "remove_partial", "wanted_key",
           "BUSY", "NOT_OURS", "UNKNOWN"]

_ETAG = r"(?:[0-9a-f]{40}|[0-9a-f]{64})"
OURS_NAME = re.compile(rf"^({_ETAG})\.incomplete$")
HF_NAME = re.compile(rf"^({_ETAG})\.[0-9a-f]{{8}}\.incomplete$")

BUSY = "being downloaded now"
NOT_OURS = "huggingface_hub's, never resumed: not fetched by xgen-declare"
UNKNOWN = "not in xgen-declare's ledger: who started it is unknown"


@dataclass(frozen=True)
class Partial:
    repo: str            # ORG/REPO, or "url"
    repo_dir: Path
    path: Path
    key: str             # the etag (or sha256) the blob will be named by: the lock's name
    size: int
    mtime: float         # last written
    hf: bool             # huggingface_hub's `<etag>.<8 hex>.incomplete`


def wanted_key(repo_dir_name: str, key: str | None = None) -> str:
    """The key `collect_partials` looks a partial up by: a hub repository's directory name (every partial of
    it), or `xgen-urls/<sha256>` (one URL file)."""
    return f"{repo_dir_name}/{key}" if key else repo_dir_name


def list_partials(store_dir: str | Path) -> list[Partial]:
    """Every partial file of the store (lstat: a link or anything not a regular file is not listed)."""
    store_dir = Path(store_dir)
    out = []
    for repo_dir in repo_dirs(store_dir):
        try:
            with os.scandir(repo_dir / "blobs") as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            m, hf = OURS_NAME.match(e.name), HF_NAME.match(e.name)
            if not (m or hf):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.append(Partial(repo_name(repo_dir), repo_dir, Path(e.path), (m or hf).group(1), st.st_size,
                                   st.st_mtime, hf is not None))
    return out


def collect_partials(partials: list[Partial], wanted: dict[str, list[str]], ours: set[str] | None,
                     real=os.path.realpath) -> tuple[list[Partial], list[tuple[Partial, str]]]:
    """(the partials gc may remove, oldest written first; the kept ones with why). `ours`: real paths the
    ledger names (None: `--all`). Whether a download writes one now is asked at removal (`locked`)."""
    removals, kept = [], []
    for p in partials:
        users = None if p.hf else (wanted.get(wanted_key(p.repo_dir.name, p.key))
                                   or wanted.get(wanted_key(p.repo_dir.name)))
        if users:
            kept.append((p, f"wanted by {', '.join(users)} (the next fetch resumes it)"))
        elif ours is not None and p.hf:
            kept.append((p, NOT_OURS))
        elif ours is not None and p.repo != "url" and real(p.path) not in ours:
            kept.append((p, UNKNOWN))
        else:
            removals.append(p)
    removals.sort(key=lambda p: (p.mtime, str(p.path)))
    return removals, kept


def lock_path(store_dir: str | Path, p: Partial) -> Path:
    return Path(store_dir) / ".locks" / p.repo_dir.name / f"{p.key}.lock"


@contextmanager
def locked(lock: Path) -> Iterator[bool]:
    """True (the lock held until the block ends) when no download holds `lock`; False when one does. The lock
    file is created when missing and never removed (filelock's rule: waiters share its inode). OSError when
    it cannot be opened or flock is not supported there: the caller keeps the partial."""
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o664)
    except PermissionError:  # a shared cache's lock another user created: flock needs no write access
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)  # releases the flock


def remove_partial(store_dir: str | Path, p: Partial, *, dry_run: bool = False) -> str:
    """Remove `p` unless a download holds its lock: "removed" (dry_run: would be), BUSY (kept), or "gone" (it
    became its blob, or went, meanwhile: nothing to count). OSError when it cannot be removed."""
    with locked(lock_path(store_dir, p)) as free:
        if not free:
            return BUSY
        try:
            st = os.lstat(p.path)
        except FileNotFoundError:
            return "gone"
        if not stat.S_ISREG(st.st_mode):
            return "gone"
        if not dry_run:
            os.unlink(p.path)
        return "removed"
