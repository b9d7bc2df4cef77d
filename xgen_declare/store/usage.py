"""Who uses a file of the store (`store ls`, `store gc`), keyed by the blob's real path:

- `referenced`: the models whose manifest names it: a hub source at the commit its revision resolves to
  in the store (refs/REVISION, no network), a URL source by its sha256, a local path (`source:` or
  `model_path`) that lies inside the store;
- `in_use`: the processes the daemon's records name (their surge and retiring processes too) that are
  alive: the files in /proc/PID/maps (a GGUF is mapped), /proc/PID/fd, and every argv element that is a
  path into the store (a vLLM snapshot directory: each file under it). A pid alive under another
  process only protects more files: gc never removes a file in doubt;
- `referenced_partials`: the same manifests' claim on partial downloads (store/partials.py): a hub source
  (or a `model_path` naming a hub repository) every partial of its repository, a URL source its sha256's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from xgen_declare.errors import FetchError, FileRefused
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.readers.bounded import MIB, read_bytes
from xgen_declare.store.download import repo_dir as hf_repo_dir
from xgen_declare.store.local import local_listing, read_ref
from xgen_declare.store.partials import wanted_key
from xgen_declare.store.remote import pick_files
from xgen_declare.store.url import URLS_DIR
from xgen_declare.store.wanted import Wanted

__all__ = ["referenced", "referenced_partials", "in_use", "real", "mark_used"]

MAPS_LIMIT = 64 * MIB
_REPO_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+)?$")


def real(path: str | os.PathLike) -> str:
    return os.path.realpath(path)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _files_at(path: str, store_real: str) -> list[str]:
    """The real paths of the store's files `path` names: itself, or every file under a directory."""
    rp = real(path)
    if not _inside(rp, store_real):
        return []
    if os.path.isdir(rp):
        return [real(Path(root) / n) for root, _dirs, names in os.walk(rp) for n in names]
    return [rp]


def _hf_files(w: Wanted, store_dir: Path) -> list[str]:
    src = w.source
    repo_dir = hf_repo_dir(store_dir, str(src.repo))
    commit = read_ref(repo_dir, src.revision or "main")
    if commit is None:
        return []
    snapshot = repo_dir / "snapshots" / commit
    try:
        files = pick_files(src, local_listing(snapshot), commit)
    except FetchError:
        return []
    return [real(snapshot / f.path) for f in files]


def mark_used(paths, now: float | None = None) -> None:
    """Set the access time of each file's blob to now (its "last used"), whatever the mount's atime policy."""
    import time
    now = time.time() if now is None else now
    for p in paths:
        try:
            st = os.stat(p)
            os.utime(real(p), (now, st.st_mtime))
        except OSError:
            continue


def _local_files(w: Wanted, store_dir: Path, store_real: str) -> list[str]:
    """A local path inside the store; a model_path that is a hub repository id (ORG/REPO[:QUANT], which a
    backend downloads itself, maybe into this very cache): every file of that repository."""
    text = str(w.source.path)
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = Path(w.file).parent / path
    if not path.exists() and _REPO_ID.match(text):
        repo_dir = hf_repo_dir(store_dir, text.split(":", 1)[0])
        return _files_at(str(repo_dir / "blobs"), store_real) if repo_dir.is_dir() else []
    return _files_at(str(path), store_real)


def referenced(items: list[Wanted], store_dir: str | Path) -> dict[str, list[str]]:
    """Blob real path -> the names of the models whose manifests name it."""
    store_dir = Path(store_dir)
    store_real = real(store_dir)
    out: dict[str, list[str]] = {}
    for w in items:
        src = w.source
        if src.kind == "hf":
            found = _hf_files(w, store_dir)
        elif src.kind == "url":
            found = [real(store_dir / URLS_DIR / "blobs" / str(src.sha256))]
        else:
            found = _local_files(w, store_dir, store_real)
        for blob in found:
            names = out.setdefault(blob, [])
            if w.name not in names:
                names.append(w.name)
    return out


def referenced_partials(items: list[Wanted], store_dir: str | Path) -> dict[str, list[str]]:
    """`partials.wanted_key` -> the names of the models whose manifests want it: no network, so a hub source
    claims its whole repository (which file a partial is, only the hub knows)."""
    store_dir = Path(store_dir)
    out: dict[str, list[str]] = {}
    for w in items:
        src = w.source
        if src.kind == "hf":
            key = wanted_key(hf_repo_dir(store_dir, str(src.repo)).name)
        elif src.kind == "url":
            key = wanted_key(URLS_DIR, str(src.sha256))
        else:
            text = str(src.path)
            path = Path(os.path.expanduser(text))
            if path.exists() or (Path(w.file).parent / path).exists() or not _REPO_ID.match(text):
                continue
            key = wanted_key(hf_repo_dir(store_dir, text.split(":", 1)[0]).name)
        names = out.setdefault(key, [])
        if w.name not in names:
            names.append(w.name)
    return out


def _proc_paths(pid: int, argv: list[str], proc_root: str) -> list[str]:
    base = os.path.join(proc_root, str(pid))
    paths: list[str] = []
    try:
        maps = read_bytes(os.path.join(base, "maps"), MAPS_LIMIT, what="a process's memory map")
    except (OSError, FileRefused):
        maps = b""
    for line in maps.decode("utf-8", "replace").splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            paths.append(parts[5].removesuffix(" (deleted)"))
    try:
        for fd in os.listdir(os.path.join(base, "fd")):
            try:
                paths.append(os.readlink(os.path.join(base, "fd", fd)))
            except OSError:
                continue
    except OSError:
        pass
    try:
        cwd = os.readlink(os.path.join(base, "cwd"))
    except OSError:
        cwd = "/"
    for arg in argv:
        for piece in (arg, arg.split("=", 1)[-1]):  # --model=PATH as well as -m PATH
            if piece and ("/" in piece or os.path.exists(os.path.join(cwd, piece))):
                paths.append(os.path.join(cwd, piece))
    return paths


def _records(state_dir: str | Path) -> list[Record]:
    out = []
    for rec in StateStore(state_dir).load_all().values():
        out.append(rec)
        out.extend(side for side in (rec.surge, rec.retiring) if side is not None)  # typed: Record
    return out


def in_use(state_dir: str | Path, store_dir: str | Path, proc_root: str = "/proc") -> dict[str, list[str]]:
    """Blob real path -> "NAME (pid N)" of each live recorded process that uses it."""
    store_real = real(store_dir)
    out: dict[str, list[str]] = {}
    for rec in _records(state_dir):
        if not rec.pid or not os.path.isdir(os.path.join(proc_root, str(rec.pid))):
            continue
        who = f"{rec.name} (pid {rec.pid})"
        for path in _proc_paths(rec.pid, list(rec.argv or []), proc_root):
            for blob in _files_at(path, store_real):
                users = out.setdefault(blob, [])
                if who not in users:
                    users.append(who)
    return out
