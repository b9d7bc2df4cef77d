"""Which flag dialect an installed llama-server speaks, read from its own `--help`.

llama.cpp changed its flags in 2026:
  new: `-ngl N|auto|all` (-1 means auto), `--fit on|off` (on by default: adjusts unset values),
       `--load-mode {auto,none,mmap,mlock,mmap+mlock,dio}` instead of --mlock/--no-mmap,
       `--split-mode none|layer|row|tensor`, `--flash-attn on|off|auto`.
  old: integer -ngl (999 = all), `--mlock`, no `--fit`, `-fa` is a plain switch.
The result is cached by binary path + mtime + size (in memory and under $XDG_CACHE_HOME). When the
binary cannot be probed (a preview for another host) the inventory's word is used, else "new".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..inventory.model import Inventory

_cache: dict[tuple, str | None] = {}


def dialect_from_help(text: str) -> str:
    if re.search(r"--fit\b", text) or "--load-mode" in text:
        return "new"
    return "old"


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xgen-declare" / "llama-server-dialects.json"


def _load_disk() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_disk(data: dict) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def probe_dialect(binary: str, timeout: float = 15.0) -> str | None:
    """Run `binary --help` (no shell) and classify it; None when it cannot run."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    if key in _cache:
        return _cache[key]
    disk = _load_disk()
    disk_key = "|".join(map(str, key))
    if disk_key in disk:
        _cache[key] = disk[disk_key]
        return disk[disk_key]
    try:
        proc = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, errors="replace")
        text = proc.stdout + proc.stderr
        dialect = dialect_from_help(text) if "--model" in text or "-m," in text else None
    except (OSError, subprocess.SubprocessError):
        dialect = None
    _cache[key] = dialect
    if dialect is not None:
        disk[disk_key] = dialect
        _save_disk(disk)
    return dialect


def dialect_for(backend: str, binary: str, inventory: Inventory) -> str | None:
    if not backend.startswith("llama-server"):
        return None
    inv = inventory.backend(backend)
    if inv is not None and inv.dialect and (inv.binary in (None, binary)):
        return inv.dialect
    return probe_dialect(binary) or (inv.dialect if inv is not None and inv.dialect else "new")
