"""Before any byte is fetched: the store's directory is writable, and the files fit while keeping
`store.min_free` free ("needs 14.2 GiB, 9.8 GiB free on /models (store.min_free 10% of 100.0 GiB = 10.0 GiB)");
a percentage names what it keeps in bytes, since 10% of a large disk can block a small file with many GiB free."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from xgen_declare.config import Store, parse_min_free
from xgen_declare.errors import FetchError

__all__ = ["check_space", "store_writable", "gib"]


def gib(n: int) -> str:
    """A size in words, in GiB from 1 GiB up ("14.2 GiB"), else MiB, KiB or bytes (never "0.0 GiB")."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def _existing(path: Path) -> Path:
    """The directory itself, or its nearest existing parent (the filesystem it will be created on)."""
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path("/")


def check_space(needed: int, store_dir: Path, store: Store, disk_usage: Callable[[str], tuple]) -> None:
    """FetchError(blocked) when `needed` bytes do not fit on the store's filesystem above store.min_free."""
    where = _existing(store_dir)
    usage = disk_usage(str(where))
    total, free = usage[0], usage[2]
    keep = store.min_free_bytes(total)
    if free - needed < keep:
        kept = f"{store.min_free} of {gib(total)} = {gib(keep)}" if parse_min_free(store.min_free)[0] is not None \
            else f"{store.min_free}"  # a percentage: what it keeps of this filesystem
        raise FetchError(f"needs {gib(needed)}, {gib(free)} free on {store_dir} (store.min_free {kept}); "
                         "free space (xgen-declare store gc), lower store.min_free or move store.dir", blocked=True)


def store_writable(store_dir: Path) -> None:
    """Create the store directory if needed; FetchError(blocked) when it cannot be created or written."""
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create the store directory {store_dir}: {exc.strerror}; create it, or set "
                         "store.dir to a writable directory", blocked=True) from None
    if not store_dir.is_dir() or not os.access(store_dir, os.W_OK | os.X_OK):
        raise FetchError(f"the store directory {store_dir} is not writable by this user; fix its permissions, "
                         "or set store.dir to a writable directory", blocked=True)
