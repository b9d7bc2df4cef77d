"""The model store (issue 23), when a manifest names a hub or URL source or the config has `store:`: its
directory (writable?), what it holds, free space against `store.min_free`, partial files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Mapping

from xgen_declare.config import Config, Store
from xgen_declare.doctor.findings import Finding, os_reason
from xgen_declare.store.fetch import store_dir_of
from xgen_declare.store.preflight import gib
from xgen_declare.store.scan import scan_store

STORE_FIX = "set store.dir in xgen-declare.yaml to a writable directory, or make this one writable"


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def store_findings(config: Config, models: list, env: Mapping[str, str], probe_write: Callable[[Path], None],
                   disk_usage: Callable[[str], tuple] = shutil.disk_usage) -> list[Finding]:
    remote = [m.name for m in models if m.spec.source is not None and m.spec.source.is_remote]
    if not remote and config.store == Store():
        return []
    root = store_dir_of(config, env)
    target = root if root.is_dir() else _existing(root)
    try:
        if not target.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(target))
        probe_write(target)
    except OSError as exc:
        what = "" if target == root else f" (it does not exist yet, and {target} cannot be written)"
        return [Finding("store", "fail", f"{root}: not writable: {os_reason(exc)}{what}", STORE_FIX)]
    scan = scan_store(root)
    used = f"{len(remote)} model(s) with a hub or URL source" if remote else "no model with a hub or URL source"
    out = [Finding("store", "ok", f"{root}: {scan.repos} repositor(y/ies), {gib(scan.blob_bytes)} in files; {used}"
                   + ("" if target == root else " (to be created)"))]
    try:
        usage = disk_usage(str(target))
    except OSError:
        usage = None
    if usage is not None:
        keep = config.store.min_free_bytes(usage[0])
        free = usage[2]
        if free < keep:
            out.append(Finding("store", "warn", f"{target}: {gib(free)} free, below store.min_free "
                               f"{config.store.min_free} ({gib(keep)}): no download can start",
                               "free disk space, lower store.min_free or move store.dir"))
        else:
            out.append(Finding("store", "ok", f"{target}: {gib(free)} free (store.min_free {config.store.min_free} "
                               f"keeps {gib(keep)})"))
    if scan.resumable:
        size = sum(n for _, n in scan.resumable)
        out.append(Finding("store", "ok", f"{len(scan.resumable)} partial download(s), {gib(size)}: the next "
                           "fetch resumes them; xgen-declare store gc removes those no manifest wants"))
    if scan.orphans:
        size = sum(n for _, n in scan.orphans)
        out.append(Finding("store", "warn", f"{len(scan.orphans)} partial file(s) huggingface_hub left behind, "
                           f"{gib(size)}: never resumed (e.g. {scan.orphans[0][0]})",
                           "xgen-declare store gc --all removes them, never one a download is writing (--all also "
                           "removes other tools' files no manifest uses: see store gc --all --dry-run first)"))
    offline = env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if config.store.offline or offline:
        why = "store.offline" if config.store.offline else "HF_HUB_OFFLINE"
        out.append(Finding("store", "ok", f"offline ({why}): models use only what the store holds"))
    return out
