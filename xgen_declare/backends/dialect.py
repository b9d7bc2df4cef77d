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

import re
import shutil
import subprocess

from xgen_declare.inventory.model import Inventory
from xgen_declare.inventory.probecache import ProbeCache, binary_key

_cache = ProbeCache("llama-server-dialects.json")


def dialect_from_help(text: str) -> str:
    if re.search(r"--fit\b", text) or "--load-mode" in text:
        return "new"
    return "old"


def probe_dialect(binary: str, timeout: float = 15.0) -> str | None:
    """Run `binary --help` (no shell) and classify it; None when it cannot run (not cached then)."""
    path = shutil.which(binary)
    key = binary_key(path) if path else None
    if key is None:
        return None
    dialect = _cache.get(key)
    if dialect is not None:
        return dialect or None  # FAILED ("") earlier in this process
    try:
        proc = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, errors="replace")
        text = proc.stdout + proc.stderr
        dialect = dialect_from_help(text) if "--model" in text or "-m," in text else None
    except (OSError, subprocess.SubprocessError):
        dialect = None
    if dialect is None:
        _cache.remember_failure(key)
    else:
        _cache.put(key, dialect)
    return dialect


def dialect_for(backend: str, binary: str, inventory: Inventory) -> str | None:
    if not backend.startswith("llama-server"):
        return None
    inv = inventory.backend(backend)
    if inv is not None and inv.dialect and (inv.binary in (None, binary)):
        return inv.dialect
    return probe_dialect(binary) or (inv.dialect if inv is not None and inv.dialect else "new")
