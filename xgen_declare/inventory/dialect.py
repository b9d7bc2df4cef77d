"""Which flag dialect an installed llama-server speaks, read from its own `--help`.

llama.cpp changed its flags in 2026:
  new: `-ngl N|auto|all` (-1 means auto), `--fit on|off` (on by default: adjusts unset values),
       `--load-mode {auto,none,mmap,mlock,mmap+mlock,dio}` instead of --mlock/--no-mmap,
       `--split-mode none|layer|row|tensor`, `--flash-attn on|off|auto`.
  old: integer -ngl (999 = all), `--mlock`, no `--fit`, `-fa` is a plain switch.
The result is cached by binary path + mtime + size (in memory and under $XDG_CACHE_HOME). When the
binary cannot be probed (a preview for another host) the inventory's word is used, else "new".

The same `--help` says which of the flags a rendered option depends on (`KNOWN_FLAGS`, e.g.
`--n-cpu-moe` and `--cpu-moe`, which both dialects have from mid-2025 on) the build offers: `help_flags`.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from xgen_declare.backends.profile import profile_of
from xgen_declare.inventory.model import Inventory
from xgen_declare.inventory.probecache import ProbeCache, binary_key

_cache = ProbeCache("llama-server-dialects.json")
# flags that a manifest field renders only where the build has them; the cache file is named after the list
# (a list probed before a flag was added would say the build lacks it)
KNOWN_FLAGS = ("--n-cpu-moe", "--cpu-moe")
_flags = ProbeCache("llama-server-flags-2.json")


def dialect_from_help(text: str) -> str:
    if re.search(r"--fit\b", text) or "--load-mode" in text:
        return "new"
    return "old"


def flags_from_help(text: str) -> list[str]:
    """Which of KNOWN_FLAGS `--help` lists (`--n-cpu-moe`, not `--n-cpu-moe-draft`; `--cpu-moe`, not
    `--spec-draft-cpu-moe` or `--cpu-moe-draft`)."""
    return [f for f in KNOWN_FLAGS if re.search(r"(?<![\w-])" + re.escape(f) + r"(?![\w-])", text)]


def probe_dialect(binary: str, timeout: float = 15.0) -> str | None:
    """Run `binary --help` (no shell) and classify it; None when it cannot run (not cached then)."""
    path = shutil.which(binary)
    key = binary_key(path) if path else None
    if key is None:
        return None
    dialect = _cache.get(key)
    if dialect is not None:
        return dialect or None  # FAILED ("") earlier in this process
    _probe(path, key, timeout)
    return _cache.get(key) or None


def _probe(path: str, key: str, timeout: float) -> None:
    """One `--help` run fills both caches (dialect and flags), or records the failure in both."""
    try:
        proc = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, errors="replace")
        text = proc.stdout + proc.stderr
        dialect = dialect_from_help(text) if "--model" in text or "-m," in text else None
    except (OSError, subprocess.SubprocessError):
        dialect = None
    if dialect is None:
        _cache.remember_failure(key)
        _flags.remember_failure(key)
    else:
        _cache.put(key, dialect)
        _flags.put(key, flags_from_help(text))


def help_flags(backend: str, binary: str, timeout: float = 15.0) -> frozenset[str] | None:
    """Which of KNOWN_FLAGS the llama-server `binary` lists in its `--help`; None when it cannot be
    probed here (a preview for another host: the flags are rendered as asked)."""
    if not _llama_server(backend):
        return None
    path = shutil.which(binary)
    key = binary_key(path) if path else None
    if key is None:
        return None
    found = _flags.get(key)
    if found is None:
        _probe(path, key, timeout)  # type: ignore[arg-type]
        found = _flags.get(key)
    return frozenset(found) if isinstance(found, list) else None


def _llama_server(backend: str) -> bool:
    return (p := profile_of(backend)) is not None and p.llama_server


def dialect_for(backend: str, binary: str, inventory: Inventory) -> str | None:
    if not _llama_server(backend):
        return None
    inv = inventory.backend(backend)
    if inv is not None and inv.dialect and (inv.binary in (None, binary)):
        return inv.dialect
    return probe_dialect(binary) or (inv.dialect if inv is not None and inv.dialect else "new")
