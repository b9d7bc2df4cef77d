"""Per-model log files: the child appends to STATE_DIR/logs/NAME.log through its own descriptor.

Rotation is copy-truncate (NAME.log -> NAME.log.1 -> ...): the child keeps writing with O_APPEND to
the same file, so rotation works for adopted processes and never needs a pipe through the daemon (a
pipe would break the backend's stdout when the daemon dies).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable


def open_log(path: Path, header: str, on_error: Callable[[Path, OSError | None], None] | None = None) -> int:
    """An O_APPEND descriptor for the child, after writing a header line. Never fails: a log that
    cannot be opened (state dir read-only, full) gives /dev/null, so the model still starts;
    `on_error(path, exc)` hears of it (exc None: the log was opened)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
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
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except OSError:
        return False
    try:
        if backups > 0:
            for i in range(backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{i}")
                if older.exists():
                    os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
            shutil.copyfile(path, path.with_name(f"{path.name}.1"))
        os.truncate(path, 0)
    except OSError:
        return False
    return True


def tail(path: Path, lines: int = 10, max_bytes: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode(errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""
