"""Results of probing an executable (`--help`, `--list-devices`, ...), cached by the binary's identity
(real path + mtime + size) in memory and in a JSON file under $XDG_CACHE_HOME/xgen-declare/, so a probe
runs once per installed binary and again only when the binary changes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def binary_key(binary: str) -> str | None:
    """Identity of an executable file; None when it cannot be stat'ed."""
    try:
        st = os.stat(binary)
    except OSError:
        return None
    return f"{os.path.realpath(binary)}|{st.st_mtime_ns}|{st.st_size}"


FAILED = ""  # what get() returns for a probe that failed in this process


class ProbeCache:
    def __init__(self, filename: str):
        self.filename = filename
        self.memory: dict[str, Any] = {}

    def path(self) -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "xgen-declare" / self.filename

    def _disk(self) -> dict:
        try:
            data = json.loads(self.path().read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Any | None:
        if key in self.memory:
            return self.memory[key]
        value = self._disk().get(key)
        if value is not None:
            self.memory[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        """Remember `value` (never None) in memory and on disk; a disk error only costs a later probe."""
        self.memory[key] = value
        path = self.path()
        data = self._disk()
        data[key] = value
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            pass

    def remember_failure(self, key: str) -> None:
        """In this process only, answer FAILED for `key` (a failing probe is not re-run on every call,
        but is tried again by the next process: it may have been transient)."""
        self.memory[key] = FAILED

    def clear(self) -> None:
        """Forget the in-memory copies (the disk cache stays)."""
        self.memory.clear()
