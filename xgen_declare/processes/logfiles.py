"""Per-model log files: the child appends to STATE_DIR/logs/NAME.log through its own descriptor.

Rotation is copy-truncate (NAME.log -> NAME.log.1 -> ...): the child keeps writing with O_APPEND to
the same file, so rotation works for adopted processes and never needs a pipe through the daemon (a
pipe would break the backend's stdout when the daemon dies).

No symlink is followed (a link planted at NAME.log would have the child append to its target, and
rotation truncate it): the live log is opened with O_NOFOLLOW and must be a regular file; rotation
copies from that descriptor into a fresh 0600 file (random temp name, O_EXCL|O_NOFOLLOW, renamed over
NAME.log.1) and truncates the descriptor, never a path; reads go through readers/bounded.py.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from pathlib import Path
from typing import Callable

from xgen_declare.errors import FileRefused
from xgen_declare.processes.statefiles import make_private_dir, replace_file, write_all
from xgen_declare.readers.bounded import tail_bytes

LOG_MODE = 0o600
COPY_CHUNK = 1 << 20


def open_own(path: Path, flags: int) -> int:
    """An fd on the regular file `path` (created 0600 with O_CREAT in `flags`); never through a symlink,
    never blocking on a FIFO. OSError with a readable strerror otherwise."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, LOG_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "is a symlink; remove it (xgen-declare writes its logs itself and never "
                          "through a link)", str(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "is not a regular file; remove it (xgen-declare writes its logs itself)",
                          str(path))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_log(path: Path, header: str, on_error: Callable[[Path, OSError | None], None] | None = None) -> int:
    """An O_APPEND descriptor for the child, after writing a header line. Never fails: a log that
    cannot be opened (state dir read-only, full) gives /dev/null, so the model still starts;
    `on_error(path, exc)` hears of it (exc None: the log was opened)."""
    try:
        make_private_dir(path.parent)
        fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError as exc:
        if on_error is not None:
            on_error(path, exc)
        return os.open(os.devnull, os.O_WRONLY)
    if on_error is not None:
        on_error(path, None)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        os.write(fd, f"=== xgen-declare {stamp}: {header}\n".encode(errors="replace"))
    except OSError:
        pass  # a full disk: the child's output may still fit, or be lost; the model runs either way
    return fd


def rotate_if_needed(path: Path, max_bytes: int, backups: int) -> bool:
    """Copy-truncate NAME.log when it is larger than `max_bytes`: NAME.log.N shift up by one (renames,
    which never follow a link), NAME.log.1 is a fresh 0600 copy, NAME.log is truncated through its own
    descriptor. A link or a non-file at NAME.log is left alone (False)."""
    try:
        fd = open_own(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size <= max_bytes:
            return False
        if backups > 0:
            for i in range(backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{i}")
                if os.path.lexists(older):
                    os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
            _copy_fd(fd, path.with_name(f"{path.name}.1"))
        os.ftruncate(fd, 0)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _copy_fd(src: int, dest: Path) -> None:
    """The whole of `src` into a new 0600 file at `dest` (temp file + rename: a link at `dest` is replaced)."""

    def copy(out: int) -> None:
        offset = 0
        while chunk := os.pread(src, COPY_CHUNK, offset):
            offset += len(chunk)
            write_all(out, chunk)

    replace_file(dest, copy)


def tail(path: Path, lines: int = 10, max_bytes: int = 64 * 1024) -> str:
    """The last `lines` lines of a log ("" when it cannot be read: missing, a link, not a file)."""
    try:
        data = tail_bytes(path, max_bytes, follow=False)
    except (OSError, FileRefused):
        return ""
    text = data.decode(errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""
