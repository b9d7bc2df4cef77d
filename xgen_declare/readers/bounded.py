"""Bounded reads of a path that came from outside: a manifest, the config, a model file, a key or
token file, a record or a log in the state dir, a path named in a request.

Any of these may be hostile or broken. A FIFO blocks `open()` for reading until a writer comes; a
symlink to `/dev/zero` is read until memory runs out; a link planted in the state dir points a read
(or a write) somewhere else. So every such read goes through `open_regular`:

* `O_NONBLOCK` for the `open()` itself (a FIFO opens at once instead of waiting for a writer), then
  `fstat` on the descriptor, and anything but a regular file is refused (`FileRefused`) before a byte
  is read. The check is on the opened descriptor, so a swap between check and read changes nothing.
* `follow=False` adds `O_NOFOLLOW`: the last component may not be a symlink (state-dir files).
* `read_bytes` / `read_text` read at most `limit` bytes and refuse a larger file.

OSError (missing, permission denied) propagates: the caller knows what the file is for and words the
message; `FileRefused` already carries path, reason and hint.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from xgen_declare.errors import FileRefused

KIB = 1024
MIB = 1024 * KIB


def kind_of(mode: int) -> str:
    """What a file of this st_mode is, in words."""
    for test, word in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return word
    return "not a regular file"


def _size_words(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / KIB:.0f} KiB" if n >= KIB else f"{n} bytes"


def open_regular(path: str | os.PathLike, *, follow: bool = True) -> int:
    """An fd open for reading on `path`, which must be a regular file (a symlink to one is fine unless
    `follow=False`). Never blocks in `open()`; raises FileRefused or OSError."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise FileRefused(os.fspath(path), "is a symlink, and this file may not be one",
                              "remove the link; xgen-declare writes this file itself") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(os.fspath(path), f"is {kind_of(st.st_mode)}, not a regular file",
                              "point it at a regular file" if follow else
                              "remove it; xgen-declare writes this file itself")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened(path: str | os.PathLike, *, follow: bool = True) -> Iterator[BinaryIO]:
    """`open_regular` as a binary file object, closed on exit."""
    with os.fdopen(open_regular(path, follow=follow), "rb") as f:
        yield f


def read_bytes(path: str | os.PathLike, limit: int, *, follow: bool = True, what: str = "this file") -> bytes:
    """At most `limit` bytes of a regular file; a larger one is refused (FileRefused), never read whole."""
    with opened(path, follow=follow) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            said, cap = _size_words(size), _size_words(limit)
            if said == cap:  # "is 1.0 MiB; the limit is 1.0 MiB" says nothing: count the bytes
                said, cap = f"{size} bytes", f"{limit} bytes"
            raise FileRefused(os.fspath(path), f"is {said}; the limit for {what} is {cap}", "use a smaller file")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we read it (or lied in st_size, as some /proc-like files do)
        raise FileRefused(os.fspath(path), f"holds more than {_size_words(limit)}, the limit for {what}",
                          "use a smaller file")
    return data


def read_text(path: str | os.PathLike, limit: int, *, follow: bool = True, what: str = "this file",
              errors: str = "strict") -> str:
    """`read_bytes` decoded as UTF-8 (UnicodeDecodeError with errors='strict')."""
    return read_bytes(path, limit, follow=follow, what=what).decode("utf-8", errors)


def tail_bytes(path: str | os.PathLike, n: int, *, follow: bool = False) -> bytes:
    """The last `n` bytes of a regular file (logs: any size, read from the end)."""
    with opened(path, follow=follow) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - n))
        return f.read(n)
