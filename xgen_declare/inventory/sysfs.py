"""Small readers for sysfs/procfs text files: every failure becomes a warning naming the path."""

from __future__ import annotations

from pathlib import Path


def read_text(path: Path, warnings: list[str], *, missing_ok: bool = False) -> str | None:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        if not missing_ok:
            warnings.append(f"{path}: missing")
        return None
    except OSError as exc:
        warnings.append(f"{path}: unreadable ({exc.strerror or exc})")
        return None


def read_int(path: Path, warnings: list[str], *, missing_ok: bool = True) -> int | None:
    text = read_text(path, warnings, missing_ok=missing_ok)
    if text is None:
        return None
    try:
        return int(text.strip(), 0)
    except ValueError:
        warnings.append(f"{path}: expected an integer, got {text.strip()[:40]!r}")
        return None


def parse_key_ints(path: Path, text: str, warnings: list[str]) -> dict[str, int]:
    """`key value` lines (KFD properties) -> {key: int}; a bad line is a warning, the rest is kept."""
    values: dict[str, int] = {}
    bad = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            bad += 1
            continue
        try:
            values[parts[0]] = int(parts[1], 0)
        except ValueError:
            bad += 1
    if bad:
        warnings.append(f"{path}: {bad} malformed line(s) ignored")
    return values


def mib(n_bytes: int | None) -> int | None:
    return None if n_bytes is None else n_bytes // (1024 * 1024)
