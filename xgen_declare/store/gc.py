"""`store gc`: which blobs of the store xgen-declare fetched (store/ledger.py; all of them with `--all`) that
no manifest references and no running process uses, least recently used first (pure: `collect` takes plain
data), and their removal: the blob, the snapshot links to it, then snapshot directories left empty, refs
naming a commit whose snapshot is gone, and a repository left empty.
Partial downloads are store/partials.py's: kept while a manifest wants them (the next fetch resumes them) or
a download writes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import read_text
from xgen_declare.store import ledger
from xgen_declare.store.listing import StoredFile

__all__ = ["Removal", "Kept", "collect", "remove", "NOT_OURS", "ours"]


@dataclass(frozen=True)
class Removal:
    blob: Path
    files: tuple[StoredFile, ...]   # the snapshot entries of this blob (one per commit that links it)
    size: int
    last_used: float


@dataclass(frozen=True)
class Kept:
    file: StoredFile
    why: str                        # "used by a, b" or "in use by a (pid 12)"


NOT_OURS = "not fetched by xgen-declare"


def ours(store_dir: str | Path, files: list[StoredFile], real=os.path.realpath) -> set[str]:
    """The real paths of the blobs xgen-declare fetched: the ledger's, and every URL file (only xgen-declare
    writes xgen-urls/)."""
    return ledger.ours(store_dir, real) | {real(f.blob) for f in files if f.repo == "url"}


def collect(files: list[StoredFile], referenced: dict[str, list[str]], in_use: dict[str, list[str]],
            real=os.path.realpath, ours: set[str] | None = None) -> tuple[list[Removal], list[Kept]]:
    """The blobs to remove (least recently used first) and the files kept with the reason. `ours`: the
    real paths of the blobs xgen-declare fetched (store/ledger.py); any other is kept (None: every blob
    may go, `store gc --all`)."""
    by_blob: dict[str, list[StoredFile]] = {}
    for f in files:
        by_blob.setdefault(real(f.blob), []).append(f)
    removals, kept = [], []
    for blob, entries in by_blob.items():
        users, running = referenced.get(blob), in_use.get(blob)
        if users or running:
            why = f"used by {', '.join(users)}" if users else f"in use by {', '.join(running or [])}"
            kept += [Kept(f, why) for f in entries]
            continue
        if ours is not None and blob not in ours:
            kept += [Kept(f, NOT_OURS) for f in entries]
            continue
        removals.append(Removal(entries[0].blob, tuple(entries), entries[0].size, entries[0].last_used))
    removals.sort(key=lambda r: (r.last_used, str(r.blob)))
    return removals, kept


def _rmdir_up(directory: Path, stop: Path) -> None:
    """Remove `directory` and its parents up to (not including) `stop` while they are empty."""
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def remove(r: Removal) -> None:
    """Delete the blob and what pointed at it; a file already gone is fine."""
    repo_dir = r.files[0].repo_dir
    for link in r.files[0].links:
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        _rmdir_up(link.parent, repo_dir / "snapshots")
    r.blob.unlink(missing_ok=True)
    refs = repo_dir / "refs"
    for root, _dirs, names in os.walk(refs, topdown=False):
        for name in names:
            ref = Path(root) / name
            try:
                commit = read_text(ref, 256, follow=False, what="a store ref", errors="replace").strip()
            except (OSError, FileRefused):
                continue
            if commit and not (repo_dir / "snapshots" / commit).is_dir():
                ref.unlink(missing_ok=True)
        _rmdir_up(Path(root), repo_dir)
    for sub in ("snapshots", "blobs"):
        try:
            (repo_dir / sub).rmdir()
        except OSError:
            pass
    try:
        if not any(repo_dir.iterdir()):
            repo_dir.rmdir()
    except OSError:
        pass
