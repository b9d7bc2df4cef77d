"""A secret (a token, an API key, a password) from a file named by a manifest, the config, a hosts file or
a flag: one bounded read, and one way of saying why the file cannot be used.

`read_secret` returns the file's text without surrounding whitespace, or raises FileRefused whatever the
fault: not a regular file or too large (readers/bounded), missing or unreadable, not UTF-8 text, empty
(unless `allow_empty`), or (with `one_line`) more than one line. Its `reason` names the path; the caller adds which field or flag
named the file, since only it knows."""

from __future__ import annotations

import os

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import KIB, read_text

__all__ = ["SECRET_LIMIT", "read_secret"]

SECRET_LIMIT = 64 * KIB  # a key, not a file to load


def read_secret(path: str | os.PathLike, *, what: str = "a token file", limit: int = SECRET_LIMIT,
                one_line: bool = False, allow_empty: bool = False) -> str:
    shown = os.fspath(path)
    try:
        value = read_text(path, limit, what=what).strip()
    except FileRefused:
        raise
    except UnicodeDecodeError:
        raise FileRefused(shown, "is not UTF-8 text", "put the secret in it as text") from None
    except OSError as exc:
        raise FileRefused(shown, f"cannot be read: {exc.strerror or exc}",
                          "check the path and its permissions") from None
    if not value and not allow_empty:
        raise FileRefused(shown, "is empty", "put the secret in it; `openssl rand -hex 32` makes one")
    if one_line and any(c in value for c in "\r\n"):
        raise FileRefused(shown, "holds more than one line", "put only the secret in it, on one line")
    return value
