"""The files of the state dir, one at a time: how each is written (atomic_write: a temp file created
O_EXCL|O_NOFOLLOW, 0600, renamed over the target), read (read_state_text / read_state_json: through
readers/bounded.py, never through a symlink, at most a size limit) and how its directories are made
(0700). state_store.py builds the state dir's layout on these; api/declare.py writes its manifests
with atomic_write too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from xgen_declare.readers.bounded import KIB, MIB, read_text

RECORD_LIMIT = 4 * MIB   # a record, the history of a model, daemon.json (ours are a few KiB)
SMALL_LIMIT = 64 * KIB   # owner_id, daemon.lock, a request
DIR_MODE = 0o700
LINK_WORDS = "is a symlink; remove it (xgen-declare creates this file itself and never writes through a link)"


def atomic_write(path: Path, text: str) -> None:
    """temp file + fsync + rename (+ fsync of the dir): a reader sees the old or the new file, whole.
    On failure (read-only, full) the old file is untouched and the temp file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, lambda fd: write_all(fd, text.encode()), fsync=True)
    fsync_dir(path.parent)


def replace_file(path: Path, fill: Callable[[int], None], *, fsync: bool = False) -> None:
    """A new 0600 file renamed over `path` (a link at `path` is replaced, never written through): `fill`
    writes it through the fd it gets. On any failure the temp file is removed and `path` is untouched."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = _create_new(tmp)
    try:
        try:
            fill(fd)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _create_new(tmp: Path) -> int:
    """A new 0600 file at `tmp`, created with O_EXCL|O_NOFOLLOW: whatever sits at that name (a leftover of a
    killed write, a link someone planted) is unlinked first (unlink removes a link, never its target),
    never opened or truncated. A directory there stays and fails the write (EISDIR), as before."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o600)
    except FileExistsError:
        os.unlink(tmp)
        return os.open(tmp, flags, 0o600)


def make_private_dir(directory: Path) -> None:
    """Create `directory` (and missing parents) 0700, as `mkdir -p -m 0700` would; an existing one is
    left as it is."""
    try:
        directory.mkdir(mode=DIR_MODE)
    except FileNotFoundError:
        if directory.parent == directory:
            raise
        make_private_dir(directory.parent)
        make_private_dir(directory)
    except FileExistsError:
        if not directory.is_dir():  # a file where the directory belongs: EEXIST, as mkdir says
            raise


def read_state_text(path: Path, what: str, limit: int = RECORD_LIMIT) -> str:
    """A file of the state dir: never through a symlink, never more than `limit` bytes (FileRefused),
    OSError (missing, ...) and UnicodeDecodeError as they come."""
    return read_text(path, limit, follow=False, what=what)


def read_state_json(path: Path, what: str) -> object:
    """`read_state_text` parsed; broken JSON is ValueError("not valid JSON (...)")."""
    try:
        return json.loads(read_state_text(path, what))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None


def corrupt(path: Path, why: object) -> str:
    return f"corrupt record {path}: {why}; fix: remove it (xgen-declare writes it again)"


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on dirs
        pass
