"""What the reconciler verbs share: the state dir, which manifests it serves, a read-only view of it,
talking to a running daemon, and one-shot converging when no daemon runs.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from xgen_declare.processes import procs
from xgen_declare.config import Config, load_config
from xgen_declare.errors import StateError, UsageError
from xgen_declare.reconciler.plan import Seen
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.states import RUNNING_STATES, State


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
    from xgen_declare.inventory import detect

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
            raise UsageError(f"state dir {state_dir} records no manifests dir: give DIR "
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
                         last_error=r.last_error, buffers=r.buffers_mib, settings=r.settings,
                         failed_hash=r.failed_spec_hash, placement=r.placement)
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


def write_failures(store: StateStore, info: dict | None = None) -> list[dict]:
    """`state_write_failed` of the running daemon ({path, errno, code, error}); empty without a daemon.
    `info`: daemon.json as already read, when the caller knows a daemon runs."""
    if info is None:
        info = store.daemon_info() if daemon_pid(store) is not None else {}
    found = info.get("state_write_failed")
    return [f for f in found if isinstance(f, dict) and isinstance(f.get("path"), str)] \
        if isinstance(found, list) else []


def format_write_failure(f: dict) -> str:
    """The same text as str(StateWriteError): cannot write PATH: ERROR (errno N CODE)."""
    code = f" {f['code']}" if f.get("code") else ""
    return f"cannot write {f['path']}: {f.get('error')} (errno {f.get('errno')}{code})"


def live_records(store: StateStore, info: dict) -> dict[str, Record]:
    """The records, with what the running daemon could not write yet (daemon.json "unsaved") over them."""
    records = store.load_all()
    unsaved = info.get("unsaved")
    for name, data in (unsaved.items() if isinstance(unsaved, dict) else ()):
        try:
            records[name] = Record.from_json(data)
        except (TypeError, ValueError):
            pass
    return records


def status_rows(store: StateStore, proc_root: str = "/proc", names: list[str] | None = None) -> list[dict]:
    """`status -o json` objects. A record claiming a running state whose process is gone shows Failed."""
    now = time.time()
    daemon = daemon_pid(store) is not None
    info = store.daemon_info() if daemon else {}
    failed = {f["path"]: format_write_failure(f) for f in write_failures(store, info)}
    rows = []
    for name, r in sorted(live_records(store, info).items()):
        if names and name not in names:
            continue
        st = r.state_enum
        alive = procs.matches(r.pid, r.start_ticks, r.boot_id, proc_root)
        last_error = r.last_error
        write_failed = failed.get(str(store.record_path(name)))
        if st == State.STOPPING and not alive and not daemon:
            st = State.STOPPED
        elif st in RUNNING_STATES and st != State.STOPPING and not alive:
            noticed = "the daemon has not recorded what followed" if daemon else "no daemon noticed yet"
            st, last_error = State.FAILED, f"process {r.pid} is gone ({noticed})"
        up = round(now - r.started_at) if alive and r.started_at else None
        rows.append({"name": name, "state": st.value, "backend": r.backend or None, "pid": r.pid if alive else None,
                     "port": r.port, "endpoint": r.endpoint, "restarts": r.restarts, "uptime": up,
                     "last_error": last_error, "manifest_error": r.manifest_error, "held": r.held,
                     "file": r.file, "state_write_failed": write_failed, "spec_hash": r.spec_hash,
                     "provenance": r.provenance, "last_good_spec_hash": r.last_good_spec_hash,
                     "rollout_error": r.rollout_error})
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
    from xgen_declare.reconciler.compute import compute, log_plan
    from xgen_declare.processes.supervisor import Supervisor

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
        check_recorded(sup)
        return result, sup
    finally:
        env.store.unlock()


def check_recorded(sup) -> None:
    """One-shot verbs end here: what could not be written is an error (no daemon keeps it in memory)."""
    sup.flush()
    failures = sup.store.write_failures
    if failures:
        text = "; ".join(str(failures[path]) for path in sorted(failures))
        raise StateError(f"state_write_failed: {text}; the models' states could not be recorded (make the "
                         f"state dir {sup.store.root} writable, then run the verb again)")


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
            sup.save(p.rec)
        elif verb == "restart":
            p.rec.held, p.rec.held_hash = False, None
            p.rec.failed_spec_hash = p.rec.rollout_error = None  # try the rolled-back spec again
            p.rolling_back = False
            if p.spec is not None or sup.running(p):
                sup.restart(name, "`restart`")
            else:
                p.rec.spec_hash = None  # the plan then starts it ("spec changed since the last failure")
                sup.save(p.rec)
