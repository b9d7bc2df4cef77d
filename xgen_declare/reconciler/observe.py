"""Observe: the facts a plan needs beyond the manifests — who listens on which port, which binary argv[0]
is, a digest of each model's env, and the planner's `Seen` of a state dir — and `want_for`, which
turns a rendered model plus those facts into the planner's `Want`."""

from __future__ import annotations

import hashlib
import os
import shutil

import psutil

from xgen_declare.processes import pids
from xgen_declare.processes.spec import Rendered, Seen, Want
from xgen_declare.processes.state_store import Record

PROC_NET = "/proc/net"
_TCP_LISTEN = "0A"  # st column of /proc/net/tcp{,6}


def listening_ports() -> set[int]:
    """TCP ports something listens on (any user), read from /proc/net/tcp and tcp6: psutil's
    net_connections() also scans every process's fds to name the owners, ~40 ms a pass on a busy
    host. Without /proc/net (not Linux): psutil; empty when that fails too."""
    ports: set[int] = set()
    found = False
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(PROC_NET, name)) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _TCP_LISTEN:
                ports.add(int(fields[1].rpartition(":")[2], 16))
    if found:
        return ports
    return set(port_holders())


def port_holders() -> dict[int, int | None]:
    """TCP port something listens on (any user) -> the listener's pid (None when this user may not see
    it); empty when the connections cannot be read. `doctor` names the holders (slower than
    listening_ports: psutil scans every process's fds)."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return {}
    out: dict[int, int | None] = {}
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and out.get(c.laddr.port) is None:
            out[c.laddr.port] = c.pid
    return out


def binary_identity(exe: str) -> str | None:
    """realpath:size:mtime of the executable argv[0] resolves to; None when not found."""
    path = shutil.which(exe)
    if path is None:
        return None
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return None
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def env_digest(r: Rendered) -> dict[str, str | None]:
    """Per variable, a digest of its value (never the value: it may be a secret)."""
    out: dict[str, str | None] = {k: (None if v is None else _digest(v)) for k, v in r.env.items()}
    out.update({k: "file:" + _digest(path) for k, path in r.secret_env.items()})
    return out


def want_for(r: Rendered, foreign_ports: set[int], placement_blocked: str | None = None,
             local: bool = True, host_blocked: str | None = None) -> Want:
    """`local`: the model would run on this machine (check its binary); False for a preview of another
    host from an inventory file, whose binaries are not here. `host_blocked`: what the host cannot give
    the model (desired.gpu_problems); it is the reason shown, before any other."""
    binary = binary_identity(r.argv[0]) if local else None
    blocked = placement_blocked
    if host_blocked:
        blocked = host_blocked
    elif binary is None and local and r.binary_from_manifest:
        blocked = (f"binary {r.argv[0]!r} not found (fix spec.binary in {r.file}, or remove it to use the backend's "
                   "default executable)")
    elif binary is None and local:
        key = "rpc: worker_binary" if r.backend == "rpc-worker" else f"binaries: {r.backend}"
        blocked = f"binary {r.argv[0]!r} not found (install it, or set {key}: PATH in xgen-declare.yaml)"
    elif r.port_source == "manifest" and r.port in foreign_ports:
        blocked = (f"port {r.port} (spec.port) is in use by a process not started by xgen-declare; it is "
                   f"left alone: free the port or change spec.port")
    return Want(**vars(r.identity(binary, env_digest(r))), enabled=r.enabled, blocked=blocked)


def seen_from_records(records: dict[str, Record], proc_root: str = "/proc") -> dict[str, Seen]:
    """The planner's view of a state dir without a daemon in this process (read-only)."""
    out = {}
    for name, r in records.items():
        out[name] = Seen.of(r, pids.matches(r.pid, r.start_ticks, r.boot_id, proc_root))
    return out
