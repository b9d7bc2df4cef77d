"""Process identity and signalling, with /proc as the only source of truth.

A process is identified by (pid, start time in clock ticks from /proc/PID/stat field 22, boot id from
/proc/sys/kernel/random/boot_id): a pid reused by another process, or a record from before a reboot,
never matches, so it is never signalled. Every child carries XGEN_DECLARE_OWNER=OWNER/NAME/SPAWN in
its environment; `find_marked` finds descendants that left the process group (setsid) by that tag.

A record is data anyone with write access to the state dir can forge: pid + start ticks + boot id of
an unrelated process are all public in /proc. So adoption (`owned`) also reads the process's own
XGEN_DECLARE_OWNER (PROC/PID/environ, bounded, through the proc_root seam) and requires it to equal
the marker the record names; a process without it is never adopted and never signalled.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import psutil

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import MIB, read_bytes

PROC = "/proc"
ENVIRON_LIMIT = 4 * MIB  # argv + environment are bounded by the kernel's ARG_MAX (2 MiB by default)


@dataclass(frozen=True)
class PidIdentity:
    pid: int
    start_ticks: int
    boot_id: str


_boot_ids: dict[str, str] = {}


def boot_id(proc_root: str = PROC) -> str | None:
    """The kernel's boot id (constant until reboot: cached)."""
    if proc_root in _boot_ids:
        return _boot_ids[proc_root]
    try:
        with open(os.path.join(proc_root, "sys/kernel/random/boot_id")) as f:
            value = f.read().strip()
    except OSError:
        return None
    if value:
        _boot_ids[proc_root] = value
    return value or None


def _stat_fields(pid: int, proc_root: str) -> list[str] | None:
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as f:
            text = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    end = text.rfind(")")
    if end < 0:
        return None
    return text[end + 2:].split()  # fields 3.. (state is index 0)


def start_ticks(pid: int, proc_root: str = PROC) -> int | None:
    """Field 22 (starttime, clock ticks since boot) of /proc/PID/stat; None when gone or a zombie."""
    rest = _stat_fields(pid, proc_root)
    if rest is None or len(rest) < 20 or rest[0] in ("Z", "X"):
        return None
    try:
        return int(rest[19])
    except ValueError:
        return None


def identify(pid: int, proc_root: str = PROC) -> PidIdentity | None:
    ticks, boot = start_ticks(pid, proc_root), boot_id(proc_root)
    if ticks is None or boot is None:
        return None
    return PidIdentity(pid, ticks, boot)


def matches(pid: int | None, ticks: int | None, boot: str | None, proc_root: str = PROC) -> bool:
    """True only when PID is alive and is the very process the record describes."""
    if not pid or ticks is None or not boot:
        return False
    return boot_id(proc_root) == boot and start_ticks(pid, proc_root) == ticks


def owner_tag_of(pid: int, proc_root: str = PROC) -> str | None:
    """XGEN_DECLARE_OWNER of process `pid` as its environment says (PROC/PID/environ, at most
    ENVIRON_LIMIT bytes); None when absent, unreadable or too large."""
    from xgen_declare.processes.state_store import OWNER_ENV

    try:
        data = read_bytes(os.path.join(proc_root, str(pid), "environ"), ENVIRON_LIMIT, what="a process environment")
    except (OSError, FileRefused):
        return None
    key = OWNER_ENV.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(key):
            return item[len(key):].decode("utf-8", "replace")
    return None


def owned(pid: int | None, ticks: int | None, boot: str | None, marker: str | None, prefix: str,
          proc_root: str = PROC) -> bool:
    """`matches`, and the process carries exactly `marker`, which is one of ours (starts with `prefix`,
    OWNER/NAME/): only such a process may be adopted or signalled on a record's word."""
    if not marker or not marker.startswith(prefix) or not matches(pid, ticks, boot, proc_root):
        return False
    return owner_tag_of(pid, proc_root) == marker  # type: ignore[arg-type]


def group_alive(pgid: int, proc_root: str = PROC) -> bool:
    """Some non-zombie process is still in process group `pgid` (zombies hold no port or GPU)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return True
    for entry in entries:
        if entry.isdigit():
            rest = _stat_fields(int(entry), proc_root)
            if rest and len(rest) > 2 and rest[2] == str(pgid) and rest[0] not in ("Z", "X"):
                return True
    return False


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_left_group(pgid: int | None, ticks: int | None, boot: str | None, proc_root: str = PROC) -> bool:
    """SIGKILL what is left of the process group of a leader that is gone (the helpers it forked in its
    group, which carry no tag if they cleared their environment). Not when the record is from another boot,
    nor when `pgid` now names a live process other than the recorded one: the pid was reused (it can be
    only once the old group is empty), and that group is not ours. True when a signal was sent."""
    if not pgid:
        return False
    here = boot_id(proc_root)
    if boot and here and boot != here:
        return False
    now = start_ticks(pgid, proc_root)  # None: gone, or the leader's own zombie
    if now is not None and now != ticks:
        return False
    return signal_group(pgid, signal.SIGKILL)


def find_marked(prefix: str) -> list[psutil.Process]:
    """Processes (readable by us) whose XGEN_DECLARE_OWNER starts with `prefix`."""
    from xgen_declare.processes.state_store import OWNER_ENV

    out = []
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid == me:
            continue
        try:
            value = p.environ().get(OWNER_ENV)
        except (psutil.Error, OSError):
            continue
        if value and value.startswith(prefix):
            out.append(p)
    return out


def tag_of(p: psutil.Process, default: str = "") -> str:
    """The process's XGEN_DECLARE_OWNER tag (`default` when unreadable or absent)."""
    from xgen_declare.processes.state_store import OWNER_ENV

    try:
        return p.environ().get(OWNER_ENV) or default
    except (psutil.Error, OSError):
        return default


def kill_tree(p: psutil.Process) -> None:
    """SIGKILL a process's group (when it leads one) and the process itself."""
    try:
        if os.getpgid(p.pid) == p.pid:
            os.killpg(p.pid, signal.SIGKILL)
        p.send_signal(signal.SIGKILL)
    except (psutil.Error, OSError):
        pass


def sweep(prefix: str, sig: int = signal.SIGKILL) -> list[int]:
    """Signal every process tagged with `prefix` (escaped descendants); returns their pids."""
    hit = []
    for p in find_marked(prefix):
        try:
            p.send_signal(sig)
            hit.append(p.pid)
        except psutil.Error:
            pass
    return hit
