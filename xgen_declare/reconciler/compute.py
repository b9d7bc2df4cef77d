"""One converge pass: observe (manifests, host, ports, state) -> plan (pure) -> apply (supervisor).

`compute()` does the observing and planning and is shared by `plan`, `apply --dry-run`, `apply` and
the daemon, so they all print and do the same thing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from typing import Callable, Collection, Mapping

import psutil

from xgen_declare.desired import ray as raycluster
from xgen_declare.config import Config
from xgen_declare.desired.build import Desired, build_desired
from xgen_declare.errors import PortRangeExhausted, Problem
from xgen_declare.inventory.model import Inventory
from xgen_declare.reconciler.plan import KEEP, Plan, Seen, Want, plan
from xgen_declare.desired.render import Rendered
from xgen_declare.reconciler.rollout import in_place_settings

log = logging.getLogger("xgen_declare.reconciler.compute")

IDLE_REASON = "on-demand: idle until a request arrives through the router"


@dataclass
class Pass:
    plan: Plan
    desired: Desired | None
    wants: dict[str, Want] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


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
    return Want(name=r.name, spec_hash=r.spec_hash(), argv=tuple(r.argv), port=r.port, backend=r.backend,
                host=r.host, gpus=tuple(r.gpus) if r.gpus is not None else None, env_digest=env_digest(r),
                binary_id=binary, enabled=r.enabled, file=r.file, blocked=blocked)


def _problem_text(problems: list[Problem]) -> str:
    return "; ".join(p.format() for p in problems if p.severity == "error") or "invalid"


def compute(paths: list[str], config: Config, inventory: Inventory, seen: Mapping[str, Seen], *,
            ports_in_use: Callable[[], set[int]] = listening_ports, only: set[str] | None = None,
            awake: Collection[str] | None = None, idle_reasons: Mapping[str, str] | None = None,
            local: bool = True) -> Pass:
    """Observe the manifests and the host against `seen`, and plan. Never raises for bad input.
    `local=False`: a preview for another host (`plan --inventory FILE`): no check of this machine's
    binaries or listening ports.
    `awake`: on-demand models the router wants running (None: keep the running ones, start none);
    `idle_reasons`: why an on-demand model left `awake` (idle, evicted), shown as its stop reason."""
    ours = {s.port for s in seen.values() if s.running and s.port}
    foreign = (ports_in_use() if local else set()) - ours
    held = {name: s.port for name, s in seen.items() if s.port}
    try:
        desired, wants = _desired_and_wants(paths, config, inventory, seen, held, foreign, awake, local)
    except PortRangeExhausted as exc:
        keep = Plan()
        for name in sorted(seen):
            keep.actions.append(_keep_all(name, str(exc)))
        keep.notes.append(f"{exc}: nothing changed")
        return Pass(keep, None, problems=[str(exc)])
    decls = {d.name: d for d in desired.load.models}
    for name in set(decls) & set(wants):
        wants[name] = replace(wants[name], settings=in_place_settings(decls[name]))
    for name in desired.dormant & set(wants):
        why = (idle_reasons or {}).get(name) or IDLE_REASON
        wants[name] = replace(wants[name], idle=why)
    wants = raycluster.wait_for_head(wants, seen)
    invalid = {name: _problem_text(probs) for name, probs in desired.problems.items() if name not in wants}
    broken: dict[str, str] = {}
    for f in desired.load.broken_files:
        texts = [p.format() for p in desired.load.problems if p.file == f and p.severity == "error"]
        broken[f] = "; ".join(texts) or f"{f}: cannot be parsed"
    guard = empty_guard(paths) if not desired.load.files and not config.reconciler.prune_empty else None
    result = plan(wants, seen, invalid=invalid, broken_files=broken, prune_guard=guard, only=only)
    if guard and any(a.reason == guard for a in result.actions):
        result.notes.append(f"the manifests {'directory' if len(paths) == 1 else 'directories'} "
                            f"{', '.join(paths)} {'holds' if len(paths) == 1 else 'hold'} no manifest: nothing "
                            "is stopped (an empty directory may be a failed mount); to stop the models, run "
                            "`xgen-declare down` or set reconciler.prune_empty: true")
    if desired.ledger is not None:
        result.ledger = desired.ledger
        result.notes.extend(f"placement: {n}" for n in desired.ledger.notes)
    result.notes.extend(raycluster.notes(desired.rendered))
    problems = [p.format() for p in desired.load.problems if p.severity == "error"]
    return Pass(result, desired, wants, problems)


def empty_guard(paths: list[str]) -> str:
    """Why models no manifest declares are kept: no manifest file at all (README: the reconciler)."""
    what = "missing" if not any(os.path.exists(p) for p in paths) else "empty"
    return f"kept: the manifests directory is {what} (reconciler.prune_empty is false)"


def _desired_and_wants(paths: list[str], config: Config, inventory: Inventory, seen: Mapping[str, Seen],
                       held: dict[str, int], foreign: set[int],
                       awake: Collection[str] | None = None, local: bool = True) -> tuple[Desired, dict[str, Want]]:
    """Render with the memory ledger. Running models count with their measured buffers; when one of
    them will be replaced (its spec changed), the ledger is built again with its prediction instead."""
    changing: frozenset[str] = frozenset()
    for _ in range(2):
        desired = build_desired(paths, config, inventory, held_ports=held, taken_ports=foreign, seen=seen,
                                changing=changing, awake=awake)
        blocked = desired.ledger.blocked if desired.ledger is not None else {}
        host = {name: _problem_text(probs) for name, probs in desired.blocked.items()}
        wants = {name: want_for(r, foreign, blocked.get(name), local, host.get(name))
                 for name, r in desired.rendered.items()}
        now = frozenset(n for n, w in wants.items()
                        if n in seen and seen[n].running and seen[n].buffers and seen[n].spec_hash != w.spec_hash)
        if now <= changing:
            break
        changing = changing | now
    return desired, wants


def _keep_all(name: str, why: str):
    from xgen_declare.reconciler.plan import Action

    return Action(KEEP, name, f"not planned: {why}")


def log_plan(p: Plan) -> None:
    for a in p.actions:
        if a.kind != KEEP:
            log.info("apply: %s", a.format())
        elif a.manifest_error:
            log.warning("%s", a.log_line())
    for n in p.notes:
        log.warning("%s", n)
    if p.ledger is not None:
        for name, w in sorted(p.ledger.warnings.items()):
            log.warning("%s: %s", name, w)
