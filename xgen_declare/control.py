"""What the reconciler verbs share: the state dir, which manifests it serves, a read-only view of it,
talking to a running daemon, and one-shot converging when no daemon runs.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from . import procs
from .config import Config, load_config
from .errors import StateError
from .plan import Seen
from .state_store import Record, StateStore
from .states import RUNNING_STATES, State


@dataclass
class Env:
    """Resolved once per verb: config, state store, manifests paths, host roots."""

    config: Config
    store: StateStore
    paths: list[str]
    config_path: str | None               # explicit --config / XGEN_CONFIG (else DIR/xgen-declare.yaml)
    sysfs_root: str = "/sys"
    proc_root: str = "/proc"

    def inventory(self):
        return detect_inventory(self.config, self.sysfs_root, self.proc_root)


def detect_inventory(config: Config, sysfs_root: str, proc_root: str):
    from .inventory import detect

    return detect(config, sysfs_root=sysfs_root, proc_root=proc_root)


def open_env(g, dirs: tuple[str, ...] | list[str] = (), *, need_paths: bool = True) -> Env:
    """DIRs from the command line, else the ones the state dir records (status/logs/down need none)."""
    paths = [os.path.abspath(d) for d in dirs]
    explicit_config = g.config_path()
    config = load_config(explicit_config, paths) if paths else None
    state_dir = g.resolve_state_dir(config)
    store = StateStore(state_dir)
    info = store.daemon_info()
    if not paths:
        paths = store.manifest_paths()
        if not explicit_config and isinstance(info.get("config"), str):
            explicit_config = info["config"]
        if not paths and need_paths:
            raise StateError(f"state dir {state_dir} records no manifests dir: give DIR "
                             "(or run `xgen-declare apply DIR` / `run DIR` once)")
        config = load_config(explicit_config, paths)
    assert config is not None
    return Env(config, store, paths, explicit_config, g.sysfs(), g.proc())


def record_paths(env: Env) -> None:
    info = env.store.daemon_info()
    info.update({"manifests": env.paths, "config": env.config_path})
    env.store.write_daemon_info(info)


def seen_from_records(records: dict[str, Record], proc_root: str = "/proc") -> dict[str, Seen]:
    """The planner's view of a state dir without a daemon in this process (read-only)."""
    out = {}
    for name, r in records.items():
        alive = procs.matches(r.pid, r.start_ticks, r.boot_id, proc_root)
        out[name] = Seen(name=name, state=r.state_enum, running=alive, spec_hash=r.spec_hash, argv=tuple(r.argv),
                         port=r.port, backend=r.backend, host=r.host,
                         gpus=tuple(r.gpus) if r.gpus is not None else None, env_digest=dict(r.env_digest),
                         binary_id=r.binary_id, file=r.file, held=r.held, held_hash=r.held_hash,
                         last_error=r.last_error, buffers=r.buffers_mib)
    return out


def daemon_pid(store: StateStore) -> int | None:
    """The pid of the daemon serving this state dir, when one runs (lock held + identity matches)."""
    info = store.daemon_info()
    pid = info.get("pid")
    if not isinstance(pid, int) or not store.is_locked():
        return None
    if not procs.matches(pid, info.get("start_ticks"), info.get("boot_id")):
        return None
    return pid


def ask_daemon(store: StateStore, pid: int, verb: str, names: list[str], timeout: float = 30.0) -> bool:
    """Drop a request for the daemon, wake it (SIGHUP) and wait until it took the request."""
    path = store.put_request(verb, names)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def wait_states(store: StateStore, names: list[str], done: frozenset[State], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = store.load_all()
        if all(n not in recs or recs[n].state_enum in done for n in names):
            return True
        time.sleep(0.1)
    return False


def status_rows(store: StateStore, proc_root: str = "/proc", names: list[str] | None = None) -> list[dict]:
    """`status -o json` objects. A record claiming a running state whose process is gone shows Failed."""
    now = time.time()
    daemon = daemon_pid(store) is not None
    rows = []
    for name, r in sorted(store.load_all().items()):
        if names and name not in names:
            continue
        st = r.state_enum
        alive = procs.matches(r.pid, r.start_ticks, r.boot_id, proc_root)
        last_error = r.last_error
        if st == State.STOPPING and not alive and not daemon:
            st = State.STOPPED
        elif st in RUNNING_STATES and st != State.STOPPING and not alive:
            st, last_error = State.FAILED, f"process {r.pid} is gone (no daemon noticed yet)"
        up = round(now - r.started_at) if alive and r.started_at else None
        rows.append({"name": name, "state": st.value, "backend": r.backend or None, "pid": r.pid if alive else None,
                     "port": r.port, "endpoint": r.endpoint, "restarts": r.restarts, "uptime": up,
                     "last_error": last_error, "manifest_error": r.manifest_error, "held": r.held,
                     "file": r.file})
    return rows


def fmt_uptime(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def converge_once(env: Env, *, only: set[str] | None = None, wait_ready: bool = True,
                  timeout: float = 900.0, before=None):
    """apply without a daemon: lock, adopt, plan, execute, tick until stops (and starts) settle.

    `before(sup)` runs after adoption and before planning (down/up/restart change holds there).
    Returns (plan, pass problems, supervisor)."""
    from .reconcile import compute, log_plan
    from .supervisor import Supervisor

    env.store.lock("stop the daemon first, or let it converge (it watches the manifests dir)")
    try:
        record_paths(env)
        sup = Supervisor(env.store, env.config.reconciler, one_shot=True, proc_root=env.proc_root)
        sup.load()
        if before is not None:
            before(sup)
        result = compute(env.paths, env.config, env.inventory(), sup.observed(), only=only)
        log_plan(result.plan)
        sup.execute(result.plan, result.desired.rendered if result.desired else {}, result.wants)
        deadline = time.monotonic() + timeout
        while sup.busy(wait_ready) and time.monotonic() < deadline:
            sup.tick()
            time.sleep(0.05)
        sup.close()
        return result, sup
    finally:
        env.store.unlock()


def apply_verb(sup, verb: str, names: list[str]) -> None:
    """Runs in the daemon (or the one-shot supervisor) before planning."""
    for name in names:
        p = sup.procs.get(name)
        if p is None:
            continue
        if verb == "down":
            sup.stop(name, "`down`", hold=True)
        elif verb == "up":
            p.rec.held, p.rec.held_hash = False, None
            sup.store.save(p.rec)
        elif verb == "restart":
            p.rec.held, p.rec.held_hash = False, None
            if p.spec is not None or sup.running(p):
                sup.restart(name, "`restart`")
            else:
                p.rec.spec_hash = None  # the plan then starts it ("spec changed since the last failure")
                sup.store.save(p.rec)
