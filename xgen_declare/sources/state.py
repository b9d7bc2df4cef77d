"""The small files a git source keeps in its state dir, beside repo.git and trees/:

    STATE/source/pin         {"commit", "at", "before"}: `source pin` holds `current` at this commit
    STATE/source/last_poll   the last poll's outcome, commits, error and time (for `source status`)
    STATE/source/lock        flock(2)ed by whoever syncs, pins or unpins (a daemon and a CLI verb)

Written atomically (a temporary file in the same directory, fsync, rename); read with the bounded
reader, never following a link, so a planted FIFO, link or huge file is refused with its path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import KIB, read_text

__all__ = ["SourceBusy", "StateFileError", "clear_pin", "locked", "read_json", "read_pin", "write_json", "write_pin"]

RECORD_LIMIT = 64 * KIB
_SHA_LENGTHS = (40, 64)


class StateFileError(Exception):
    """A state file of the source cannot be read or written; the message names the file and what to do."""


class SourceBusy(StateFileError):
    """Another process holds STATE/source/lock past the wait."""


def write_json(path: Path, data: dict) -> None:
    """`data` as JSON at `path`, replaced atomically; StateFileError when it cannot be written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StateFileError(f"cannot write {path}: {exc.strerror or exc} (check the state dir's permissions "
                             "and free space)") from None


def read_json(path: Path) -> dict | None:
    """The JSON object at `path`; None when there is none; StateFileError when it is not one."""
    try:
        text = read_text(path, RECORD_LIMIT, follow=False, what="a source state file")
    except FileNotFoundError:
        return None
    except FileRefused as exc:
        raise StateFileError(f"{exc} (remove it; xgen-declare writes it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'} "
                             "(remove it; xgen-declare writes it)") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise StateFileError(f"{path} is not a JSON object (remove it; xgen-declare writes it)")
    return data


def read_pin(root: Path) -> dict | None:
    """The pin record ({"commit", "at", "before"}) or None; StateFileError for a damaged one."""
    path = root / "pin"
    data = read_json(path)
    if data is None:
        return None
    commit = data.get("commit")
    if not isinstance(commit, str) or len(commit) not in _SHA_LENGTHS or \
            any(c not in "0123456789abcdef" for c in commit):
        raise StateFileError(f"{path} does not hold a commit id (run `xgen-declare pin COMMIT` again, "
                             "or `xgen-declare unpin`)")
    return data


def write_pin(root: Path, commit: str, before: str | None, now: float | None = None) -> dict:
    record = {"commit": commit, "before": before, "at": now if now is not None else time.time()}
    write_json(root / "pin", record)
    return record


def clear_pin(root: Path) -> bool:
    """Remove the pin; True when there was one."""
    try:
        os.unlink(root / "pin")
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateFileError(f"cannot remove {root / 'pin'}: {exc.strerror} (check the state dir's "
                             "permissions)") from None
    return True


@contextlib.contextmanager
def locked(root: Path, wait: float, clock=time.monotonic, pause=time.sleep) -> Iterator[None]:
    """Hold ROOT/lock (flock) for the block; StateFileError when another process holds it past `wait` s."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        deadline = clock() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    raise SourceBusy(f"another xgen-declare is syncing this source ({root / 'lock'} is "
                                         f"held for over {wait:g} s); try again later") from None
                pause(0.05)
        yield
    finally:
        os.close(fd)
