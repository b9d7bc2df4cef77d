"""The config and the manifests (valid? runnable on this host?), the daemon (running? pid, uptime, API
address) and its models (any failing?), from the same loaders, host checks and status rows the other
verbs use."""

from __future__ import annotations

import time
from dataclasses import replace

from xgen_declare.config import Config, load_config
from xgen_declare.reconciler.client import daemon_pid, fmt_uptime, status_rows
from xgen_declare.states import State
from xgen_declare.desired.checks import host_problems
from xgen_declare.desired.resolve import resolve
from xgen_declare.errors import Problem, ProblemsError
from xgen_declare.inventory.model import Inventory
from xgen_declare.manifests.load import LoadResult
from xgen_declare.processes.state_store import StateStore
from xgen_declare.doctor.findings import Finding

VALIDATE_FIX = "`xgen-declare validate DIR` lists every problem with its file, line and field"
TROUBLED = {State.FAILED, State.CRASH_LOOP_BACK_OFF, State.UNHEALTHY, State.BLOCKED, State.INVALID, State.EXITED}


def _first(problems: list[Problem]) -> str:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0].format() + more


def load_config_finding(config_path: str | None, dirs: list[str]) -> tuple[Config, Finding]:
    try:
        config = load_config(config_path, dirs)
    except ProblemsError as exc:
        return Config(), Finding("config", "fail", f"invalid: {_first(exc.problems)}; using the defaults below",
                                 VALIDATE_FIX)
    where = config.file or "no xgen-declare.yaml (the defaults apply)"
    return config, Finding("config", "ok", f"{where}: ports {config.ports.start}-{config.ports.end}")


def manifest_findings(dirs: list[str], result: LoadResult | None, inv: Inventory) -> list[Finding]:
    if result is None:
        return [Finding("manifests", "ok", "not checked: no DIR given and the state dir records none "
                        "(`xgen-declare doctor DIR` checks one)")]
    out = []
    errors = result.errors
    warnings = [p for p in result.problems if p.severity != "error"]
    where = ", ".join(dirs)
    if errors:
        out.append(Finding("manifests", "fail", f"{len(errors)} problem(s) in {where}: {_first(errors)}", VALIDATE_FIX))
    elif not result.files:
        out.append(Finding("manifests", "warn", f"no *.yaml / *.yml manifest under {where}",
                           "write one (see README, 'A manifest') or give the right DIR"))
    else:
        out.append(Finding("manifests", "ok", f"{len(result.models)} valid model(s) in {len(result.files)} file(s) "
                           f"under {where}"))
    if warnings:
        out.append(Finding("manifests", "warn", f"{len(warnings)} warning(s): {_first(warnings)}", VALIDATE_FIX))
    for decl in result.models:
        for p in host_problems(resolve(decl, inv), inv):
            out.append(Finding("manifests", "fail", f"{decl.name}: {replace(p, hint='').format()}",
                               p.hint or VALIDATE_FIX))
    return out


def daemon_findings(store: StateStore, proc_root: str) -> tuple[list[Finding], dict[int, str], int | None]:
    """Findings, pid -> name of our running models, and the daemon's pid (for the port check)."""
    if not store.root.is_dir():  # nothing ran here yet (and probing the lock would create the dir)
        return [Finding("daemon", "ok", f"not running; nothing ran with this state dir yet ({store.root})")], {}, None
    try:
        pid = daemon_pid(store)
        rows = status_rows(store, proc_root)
    except OSError as exc:  # a read-only state dir: the lock cannot be probed
        return [Finding("daemon", "warn", f"cannot tell: the lock in {store.root} cannot be probed ({exc})",
                        "see the state-dir finding")], {}, None
    info = store.daemon_info()
    out = []
    if pid:
        started = info.get("started_at")
        up = fmt_uptime(round(time.time() - started)) if isinstance(started, (int, float)) else "?"
        api = info.get("api") or "no API (start with `run --api` for one)"
        dirs = ", ".join(store.manifest_paths()) or "?"
        out.append(Finding("daemon", "ok", f"running: pid {pid}, up {up}, serving {dirs}, API {api}"))
        if info.get("config_error"):
            first = str(info["config_error"]).splitlines()[0]
            out.append(Finding("daemon", "warn", f"running on its last good config; the config is invalid: {first}",
                               VALIDATE_FIX))
    else:
        out.append(Finding("daemon", "ok", "not running (start it: `xgen-declare run DIR`; or converge once: "
                           "`xgen-declare apply DIR`)"))
    ours = {r.pid: r.name for r in rows if r.pid}
    if rows:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state.value] = counts.get(r.state.value, 0) + 1
        out.append(Finding("models", "ok", f"{len(rows)} model(s) in the state dir: "
                           + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))))
    for r in rows:
        if r.state in TROUBLED:
            why = r.manifest_error or r.last_error or "no error recorded"
            out.append(Finding("models", "warn", f"{r.name}: {r.state.value}: {why.splitlines()[0]}",
                               f"`xgen-declare logs {r.name}` shows its output; `xgen-declare status` its state"))
    return out, ours, pid
