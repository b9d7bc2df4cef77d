"""What the store holds, file by file, without network (`store ls`, `store gc`): each snapshot file of each
repository (huggingface_hub's layout: snapshots/COMMIT/FILE -> ../../blobs/ETAG, refs/REVISION = COMMIT),
each URL file (xgen-urls/snapshots/SHA256/NAME -> ../../blobs/SHA256), and blobs no snapshot links to.
"Last used" is the blob's access time, as huggingface_hub's `scan_cache_dir` reports it (`pull` sets it
when it finds the file already there). Links are read, never followed outside the repository's blobs/.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from xgen_declare.names import is_commit_id
from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import read_text
from xgen_declare.store.url import URLS_DIR

__all__ = ["StoredFile", "list_store", "repo_dirs", "repo_name"]

_BLOB = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class StoredFile:
    repo: str                      # ORG/REPO, or "url" for a URL source's file
    repo_dir: Path
    commit: str | None             # the snapshot's commit (a URL file: its sha256); None: no snapshot links it
    revisions: tuple[str, ...]     # refs naming that commit (main, v1)
    path: str                      # the file inside the snapshot (a blob nothing links to: its name)
    blob: Path
    size: int
    last_used: float               # atime of the blob
    links: tuple[Path, ...] = field(default=(), compare=False)  # snapshot links to the blob


def repo_name(repo_dir: Path) -> str:
    return "url" if repo_dir.name == URLS_DIR else repo_dir.name.split("--", 1)[1].replace("--", "/")


def _refs(repo_dir: Path) -> dict[str, list[str]]:
    """commit -> the revisions whose ref names it."""
    out: dict[str, list[str]] = {}
    refs = repo_dir / "refs"
    for root, _dirs, names in os.walk(refs):
        for name in names:
            ref = Path(root) / name
            try:
                commit = read_text(ref, 256, follow=False, what="a store ref").strip()
            except (OSError, FileRefused, UnicodeDecodeError):
                continue
            if is_commit_id(commit):
                out.setdefault(commit, []).append(str(ref.relative_to(refs)))
    return out


def _blob_of(link: Path, blobs: Path) -> Path | None:
    """The blob a snapshot entry links to, when it is a link into this repository's blobs/ naming a blob."""
    try:
        target = os.readlink(link)
    except OSError:
        return None
    blob = Path(os.path.normpath(link.parent / target))
    return blob if blob.parent == blobs and _BLOB.match(blob.name) else None


def _repo_files(repo_dir: Path) -> list[StoredFile]:
    blobs = repo_dir / "blobs"
    refs = _refs(repo_dir)
    name = repo_name(repo_dir)
    by_blob: dict[Path, list[tuple[str, str, Path]]] = {}
    snapshots = repo_dir / "snapshots"
    for commit_dir in sorted(snapshots.iterdir()) if snapshots.is_dir() else []:
        for root, _dirs, names in os.walk(commit_dir):
            for n in sorted(names):
                link = Path(root) / n
                blob = _blob_of(link, blobs)
                if blob is not None:
                    by_blob.setdefault(blob, []).append((commit_dir.name, str(link.relative_to(commit_dir)), link))
    out = []
    entries = sorted(blobs.iterdir()) if blobs.is_dir() else []
    for blob in entries:
        if not _BLOB.match(blob.name):
            continue  # partial files: doctor reports them, the next fetch resumes them
        try:
            st = os.lstat(blob)
        except OSError:
            continue
        uses = by_blob.get(blob) or [(None, blob.name, None)]
        links = tuple(link for _, _, link in uses if link is not None)
        for commit, path, _link in uses:
            out.append(StoredFile(name, repo_dir, commit, tuple(sorted(refs.get(commit or "", []))), path, blob,
                                  st.st_size, st.st_atime, links))
    return out


def repo_dirs(store_dir: str | Path) -> list[Path]:
    """The store's repository directories (`models--ORG--REPO`, `xgen-urls`), sorted; links and anything
    not a directory are not listed; none when the store cannot be read."""
    try:
        return sorted(p for p in Path(store_dir).iterdir()
                      if (p.name.startswith("models--") or p.name == URLS_DIR) and p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def list_store(store_dir: str | Path) -> list[StoredFile]:
    """Every file of the store, one entry per snapshot file (a blob linked from two commits: two entries)."""
    out: list[StoredFile] = []
    for repo_dir in repo_dirs(store_dir):
        try:
            out += _repo_files(repo_dir)
        except OSError:  # unreadable: its files are not listed, so gc never removes them
            continue
    return sorted(out, key=lambda f: (f.repo, f.commit or "", f.path))
