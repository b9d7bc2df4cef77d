"""The host around the models: the port range (free, ours, or held by whom; inside the kernel's ephemeral
range or not), the state dir (writable, lock holder, disk space) and the inotify limits against the
directories the daemon watches."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil

from xgen_declare.config import Config
from xgen_declare.desired.ports import ephemeral_range, reserved_ports
from xgen_declare.processes.state_store import StateStore
from xgen_declare.doctor.findings import DoctorHost, Finding, os_reason

LOW_DISK_MIB = 1024
STATE_DIR_FIX = "make it writable for this user (chown), or pick another: --state-dir / XGEN_STATE_DIR / state_dir:"
INOTIFY_FIX = ("raise it: sudo sysctl fs.inotify.max_user_watches=524288 (persist in /etc/sysctl.d/); the daemon's "
               "periodic resync still catches changes")


def _who(pid: int | None) -> str:
    if pid is None:
        return "a process of another user"
    try:
        return f"pid {pid} ({psutil.Process(pid).name()})"
    except psutil.Error:
        return f"pid {pid}"


def port_findings(config: Config, store: StateStore, host: DoctorHost, explicit: dict[int, str],
                  our_pids: dict[int, str], daemon_pid: int | None) -> list[Finding]:
    """`explicit`: spec.port -> model name; `our_pids`: pid -> model name of our running models."""
    start, end = config.ports.start, config.ports.end
    holders = host.port_holders()
    foreign: dict[int, str] = {}
    ours: dict[int, str] = {}
    for port in sorted(set(range(start, end + 1)) | set(explicit)):
        if port not in holders:
            continue
        pid = holders[port]
        if pid is not None and pid in our_pids:
            ours[port] = our_pids[pid]
        elif pid is not None and pid == daemon_pid:
            ours[port] = "the daemon"
        else:
            foreign[port] = _who(pid)
    out = []
    in_range = [p for p in foreign if start <= p <= end]
    free = (end - start + 1) - len(in_range) - sum(1 for p in ours if start <= p <= end)
    text = f"range {start}-{end}: {free} free" + (
        f"; ours: {', '.join(f'{p} ({n})' for p, n in ours.items())}" if ours else "")
    if in_range:
        held = ", ".join(f"{p} held by {foreign[p]}" for p in in_range)
        status = "fail" if free <= 0 else "warn"
        out.append(Finding("ports", status, f"{text}; {held}",
                           "models skip ports held by others: free them, or move the range (ports: in "
                           "xgen-declare.yaml)"))
    else:
        out.append(Finding("ports", "ok", text))
    for port, name in sorted(explicit.items()):
        if port in foreign:
            out.append(Finding("ports", "fail", f"{name}: spec.port {port} is held by {foreign[port]}; the model "
                               "stays Blocked", f"free port {port} or change spec.port of {name}"))
    out.extend(ephemeral_findings(start, end, explicit, host.proc_root))
    return out


def ephemeral_findings(start: int, end: int, explicit: dict[int, str], proc_root: str) -> list[Finding]:
    """Model ports inside the kernel's ephemeral range (and not reserved): any outgoing connection may take
    one as its local port, and while it is open or in TIME_WAIT the backend cannot bind it."""
    lo, hi = ephemeral_range(proc_root)
    reserved = reserved_ports(proc_root)
    ports = set(range(start, end + 1)) | set(explicit)
    exposed = sorted(p for p in ports if lo <= p <= hi and p not in reserved)
    if not exposed:
        return []
    names = sorted({explicit[p] for p in exposed if p in explicit})
    spans = _spans(exposed)
    what = f"{len(exposed)} model port(s) ({', '.join(spans)}" + (
        f"; spec.port of {', '.join(names)}" if names else "") + ")"
    return [Finding("ports", "warn", f"{what} lie in the kernel's ephemeral range {lo}-{hi} "
                    "(net.ipv4.ip_local_port_range): an outgoing connection can hold such a port (open, or in "
                    "TIME_WAIT for a minute) and a backend then cannot bind it",
                    f"move them below {lo} (ports: in xgen-declare.yaml, or spec.port; the default range is "
                    f"8001-8020), or reserve them: sudo sysctl net.ipv4.ip_local_reserved_ports={','.join(spans)} "
                    "(persist in /etc/sysctl.d/)")]


def _spans(ports: list[int]) -> list[str]:
    """Sorted ports as runs: [8001, 8002, 8003, 9000] -> ["8001-8003", "9000"] (the sysctl's own form)."""
    runs: list[list[int]] = []
    for p in ports:
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return [f"{a}-{b}" if a != b else str(a) for a, b in runs]


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def state_dir_findings(store: StateStore, host: DoctorHost) -> list[Finding]:
    root = store.root
    out = []
    target = root if root.is_dir() else _existing(root)
    try:
        if not target.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(target))
        host.probe_write(target)
    except OSError as exc:
        what = "" if target == root else f" (it does not exist yet, and {target} cannot be written)"
        out.append(Finding("state-dir", "fail", f"{root}: not writable: {os_reason(exc)}{what}", STATE_DIR_FIX))
    else:
        out.append(Finding("state-dir", "ok", f"{root}: writable" + ("" if target == root else " (to be created)")))
    holder = store.lock_holder()  # read before is_locked(): probing the lock rewrites the file
    try:
        locked = root.is_dir() and store.is_locked()
    except OSError as exc:
        out.append(Finding("state-dir", "warn", f"{root}/daemon.lock: cannot be probed ({os_reason(exc)})",
                           STATE_DIR_FIX))
    else:
        if locked:
            out.append(Finding("state-dir", "ok", f"locked by {_who(holder)}: one xgen-declare process acts on "
                               "the models at a time"))
    try:
        usage = shutil.disk_usage(target)
    except OSError:
        return out
    free_mib = usage.free // 2**20
    if free_mib < LOW_DISK_MIB:
        out.append(Finding("state-dir", "warn", f"{target}: only {free_mib} MiB free (model logs are kept here)",
                           "free disk space or move the state dir (--state-dir / XGEN_STATE_DIR)"))
    else:
        out.append(Finding("state-dir", "ok", f"{target}: {free_mib / 1024:.1f} GiB free"))
    return out


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _count_dirs(paths: list[str]) -> int:
    n = 0
    for p in paths:
        for _root, _dirs, _files in os.walk(p):  # watchdog watches every subdirectory, hidden ones too
            n += 1
    return n


def inotify_findings(dirs: list[str], config: Config, host: DoctorHost) -> list[Finding]:
    """The daemon watches every directory under DIR (and the templates dir) with one inotify watch each;
    the limit is per user, shared with every other program of that user."""
    base = Path(host.proc_root) / "sys" / "fs" / "inotify"
    watches, instances = _read_int(base / "max_user_watches"), _read_int(base / "max_user_instances")
    tdir = config.resolve(config.templates_dir) if config.templates_dir else None
    needed = _count_dirs(dirs + ([tdir] if tdir else [])) + 1  # + the config file's directory
    if watches is None:
        return [Finding("inotify", "warn", f"{base}/max_user_watches unreadable; the daemon needs ~{needed} watches",
                        "the daemon's periodic resync catches changes if watching fails")]
    text = (f"the daemon needs ~{needed} watch(es) for {len(dirs)} manifests dir(s); max_user_watches {watches}, "
            f"max_user_instances {instances if instances is not None else '?'}")
    if needed > watches:
        return [Finding("inotify", "fail", text, INOTIFY_FIX)]
    if needed > watches // 2:
        return [Finding("inotify", "warn", text + " (other programs of this user share the limit)", INOTIFY_FIX)]
    return [Finding("inotify", "ok", text)]
