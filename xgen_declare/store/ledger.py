"""Which blobs of the store xgen-declare itself fetched, so that `store gc` removes only those (the default
store is the shared HuggingFace cache: what `hf download`, vLLM or llama.cpp put there is not ours).

One line per blob, its path relative to the store (`models--ORG--REPO/blobs/ETAG`), appended by
store/download.py when a blob it downloaded passed its checksum and took its final name; `store gc` drops
the lines of the blobs it removed. Beside it, `partials`: the same for each partial file
(`blobs/ETAG.incomplete`) store/download.py is about to write, so that gc can tell its own partial downloads
(store/partials.py); a line whose file is gone (completed, removed) is dropped at the next gc.
The files live in `STORE/.locks/xgen-declare/` because the one name
huggingface_hub's `scan_cache_dir` (`hf cache scan`) skips at the top of a cache is `.locks`: anything else
there would be reported as a corrupted repository. A URL source's files (`xgen-urls/`) are ours by their
directory: only xgen-declare writes there.

Appends and the rewrite hold an flock on a lock file beside it (waited for LOCK_WAIT seconds at most), so
a gc never drops a line a fetch adds meanwhile. A ledger that is lost, unreadable or over LIMIT makes every
hub blob "not ours": gc then removes less, never more (`store gc --all` removes files whoever fetched them).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from xgen_declare.errors import FileRefused
from xgen_declare.processes.statefiles import replace_file, write_all
from xgen_declare.readers.bounded import MIB, read_text

__all__ = ["LEDGER", "PARTIALS", "LIMIT", "record", "ours", "forget", "ledger_path"]

log = logging.getLogger("xgen_declare.store.ledger")

LEDGER = Path(".locks") / "xgen-declare" / "fetched"
PARTIALS = LEDGER.with_name("partials")
LIMIT = 32 * MIB  # ~100 bytes a line: some 300 000 blobs
LOCK_WAIT = 10.0  # seconds; the lock is held for one append or one rewrite


def ledger_path(store_dir: str | Path) -> Path:
    return Path(store_dir) / LEDGER


@contextmanager
def _locked(store_dir: Path, wait: float | None = None) -> Iterator[Path]:
    """The ledger's path with its lock held; OSError when another process holds the lock longer than
    `wait` seconds (the store may be shared: nobody else's lock stalls a fetch or a gc)."""
    path = ledger_path(store_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name("fetched.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + (LOCK_WAIT if wait is None else wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OSError(f"{path.with_name('fetched.lock')} is locked by another process") from None
                time.sleep(0.05)
        yield path
    finally:
        os.close(fd)


def _line(store_dir: Path, blob: Path) -> str:
    rel = os.path.relpath(blob, store_dir)
    if rel.startswith("..") or "\n" in rel:
        raise ValueError(f"{blob} is not inside the store {store_dir}")
    return rel


def record(store_dir: str | Path, blob: Path, *, partial: bool = False) -> None:
    """Note that xgen-declare fetched `blob` (partial: is writing that partial file). Never fails a fetch: a
    ledger that cannot be written only means gc keeps that file (logged)."""
    store_dir = Path(store_dir)
    try:
        line = _line(store_dir, blob) + "\n"
        with _locked(store_dir) as path:
            if partial:
                path = store_dir / PARTIALS
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                write_all(fd, line.encode())
            finally:
                os.close(fd)
    except (OSError, ValueError) as exc:
        log.warning("cannot note %s in the store's ledger %s: %s (store gc keeps it unless --all)", blob,
                    ledger_path(store_dir), exc)


def _read(path: Path) -> list[str]:
    try:
        text = read_text(path, LIMIT, follow=False, what="the store's ledger", errors="replace")
    except FileNotFoundError:
        return []
    except (OSError, FileRefused) as exc:
        log.warning("cannot read the store's ledger %s: %s (store gc removes only URL files)", path, exc)
        return []
    return [x for x in text.splitlines() if x]


def ours(store_dir: str | Path, real=os.path.realpath) -> set[str]:
    """The real paths of the hub blobs the ledger names (store/gc.ours adds the URL files)."""
    store_dir = Path(store_dir)
    lines = _read(ledger_path(store_dir)) + _read(store_dir / PARTIALS)
    return {real(store_dir / rel) for rel in lines if not rel.startswith("..")}


def forget(store_dir: str | Path, blobs: Iterable[Path]) -> None:
    """Drop the lines of `blobs` (removed by gc) and of blobs no longer there."""
    store_dir = Path(store_dir)
    gone = {_line(store_dir, b) for b in blobs}
    with _locked(store_dir) as ledger:
        for path in (ledger, store_dir / PARTIALS):
            lines = _read(path)
            kept = list(dict.fromkeys(x for x in lines if x not in gone and os.path.lexists(store_dir / x)))
            if kept != lines:
                replace_file(path, lambda fd: write_all(fd, "".join(f"{x}\n" for x in kept).encode()))
