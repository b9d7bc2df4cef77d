"""What the store holds, for `doctor` (`store ls` reads store/listing.py): repositories and the URL files'
directory, bytes in complete files, and partial files, told apart by name: `blobs/<etag>.incomplete` is the
store's own (resumed by the next fetch); `blobs/<etag>.<8 hex>.incomplete` is one huggingface_hub left when its
process died (never resumed: it names a new file each time). Reads names and sizes only (lstat, no link
followed)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from xgen_declare.store.url import URLS_DIR

__all__ = ["StoreScan", "scan_store"]

_ETAG = r"(?:[0-9a-f]{40}|[0-9a-f]{64})"
_BLOB = re.compile(rf"^{_ETAG}$")
_OURS = re.compile(rf"^{_ETAG}\.incomplete$")
_ORPHAN = re.compile(rf"^{_ETAG}\.[0-9a-f]{{8}}\.incomplete$")


@dataclass(frozen=True)
class StoreScan:
    dir: Path
    repos: int = 0
    blob_bytes: int = 0
    resumable: tuple[tuple[Path, int], ...] = ()   # the store's partial files (path, bytes)
    orphans: tuple[tuple[Path, int], ...] = ()     # huggingface_hub's, never resumed


def _files(directory: Path):
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    yield Path(entry.path), entry.name, entry.stat(follow_symlinks=False).st_size
    except OSError:
        return


def scan_store(store_dir: str | Path) -> StoreScan:
    store_dir = Path(store_dir)
    repos, blob_bytes, resumable, orphans = 0, 0, [], []
    try:
        entries = sorted(p for p in store_dir.iterdir()
                         if (p.name.startswith("models--") or p.name == URLS_DIR) and not p.is_symlink())
    except OSError:
        return StoreScan(store_dir)
    for repo in entries:
        repos += 1
        for path, name, size in _files(repo / "blobs"):
            if _BLOB.match(name):
                blob_bytes += size
            elif _OURS.match(name):
                resumable.append((path, size))
            elif _ORPHAN.match(name):
                orphans.append((path, size))
    return StoreScan(store_dir, repos, blob_bytes, tuple(resumable), tuple(orphans))
