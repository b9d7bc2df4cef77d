"""The backends' own keys (`spec.api_key_file`), which the router sends upstream as `Authorization`.

A key file is a path from outside: a FIFO there blocks `open()` until a writer comes, and a request's
read of it on the server's event loop stopped the whole API (router, dashboard, `/metrics`). So no
request ever opens one: `KeyCache.refresh(table)` reads every route's key file through
readers/bounded (regular files only, at most KEY_LIMIT) on the control loop, when a pass builds the
route table and at each loop step when the file's identity (stat: device, inode, size, times, mode)
changed; a request only looks its key up (`Router.api_key`). A file that cannot be used is kept as
its problem: that model answers 503 naming the field and the file; the other models are not affected.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import KIB
from xgen_declare.readers.secret import read_secret

__all__ = ["Key", "KeyCache", "KEY_LIMIT"]

KEY_LIMIT = 64 * KIB


@dataclass(frozen=True)
class Key:
    identity: tuple | None
    value: str | None = None      # None: no key (an empty file), or `problem`
    problem: str | None = None    # why the file is not used, after its path: "is a FIFO ..."


def identity_of(path: str) -> tuple[tuple | None, str | None]:
    """The file's identity by stat (never opens it), or why there is none."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode), None


def read_key(path: str, identity: tuple | None) -> Key:
    try:
        return Key(identity, read_secret(path, what="an API key file", limit=KEY_LIMIT, allow_empty=True) or None)
    except FileRefused as exc:
        return Key(identity, problem=f"{exc.reason}" + (f" ({exc.hint})" if exc.hint else ""))


class KeyCache:
    """path -> Key. Written on the control loop (or a worker thread), read by requests. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys: dict[str, Key] = {}

    def refresh(self, table) -> None:
        """Read the key files of `table`'s routes whose identity changed; forget the others."""
        paths = {r.api_key_file for r in table.routes.values() if r.api_key_file}
        for path in sorted(paths):
            self.refresh_one(path)
        with self._lock:
            for gone in set(self._keys) - paths:
                del self._keys[gone]

    def refresh_one(self, path: str) -> Key:
        identity, problem = identity_of(path)
        with self._lock:
            old = self._keys.get(path)
        if old is not None and identity is not None and old.identity == identity:
            return old
        key = Key(None, problem=problem) if identity is None else read_key(path, identity)
        with self._lock:
            self._keys[path] = key
        return key

    def cached(self, path: str) -> Key | None:
        with self._lock:
            return self._keys.get(path)
