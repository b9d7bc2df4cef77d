"""One converge pass, the only one: observe (manifests, host, ports, records) -> plan (pure) -> execute.

`compute()` observes and plans; `execute()` is THE executor, which carries a plan's actions out through
the supervisor; `converge()` is both, with one plan logger. The daemon, `apply` (one-shot, no daemon),
`down`/`up`/`restart`, the API and the router all go through here, so they print and do the same thing.
Holds and forced restarts are plan inputs (`requests`), never edits of a record outside the plan.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Collection, Mapping

from xgen_declare.config import Config
from xgen_declare.desired import ray as raycluster
from xgen_declare.desired.build import Desired, build_desired
from xgen_declare.desired.hosts import for_another_host
from xgen_declare.desired.served import claims
from xgen_declare.errors import Problem, StateError
from xgen_declare.inventory.model import Inventory
from xgen_declare.processes.spec import Rendered, Seen, Want
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.reconciler.env import Env, record_paths
from xgen_declare.reconciler.observe import listening_ports, want_for
from xgen_declare.reconciler.plan import (BLOCKED, KEEP, RESTART, START, STOP, UPDATE, Action, Cause, NotHere, Plan,
                                          Request, plan)
from xgen_declare.reconciler import strategy
from xgen_declare.reconciler.fetching import (BLOCKED as FETCH_BLOCKED, DONE, Download, Fetcher, in_store_offline)
from xgen_declare.store.fetch import offline_why
from xgen_declare.reconciler.downloads import store_fetcher
from xgen_declare.reconciler.hubfacts import stored_facts
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.manifests.source import Source
from xgen_declare.placement.hub import HubFacts
from xgen_declare.store.wanted import implied_token, read_token
from xgen_declare.reconciler.rollout import in_place_settings

log = logging.getLogger("xgen_declare.reconciler.apply")

IDLE_REASON = "on-demand: idle until a request arrives through the router"


@dataclass
class Pass:
    plan: Plan
    desired: Desired | None
    wants: dict[str, Want] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    surges: strategy.Surges = field(default_factory=lambda: strategy.Surges())  # specs a surge runs instead
    fetching: dict[str, Source] = field(default_factory=dict)  # models whose source is not in the store yet
    sources: dict[str, Source] = field(default_factory=dict)   # every model's hub or URL source this pass

    def unsure(self) -> set[str] | None:
        """The models whose manifests this pass could not read (invalid: a fetch of theirs is not cancelled);
        None when any model may be among them (a file that cannot be parsed, no manifest file at all)."""
        d = self.desired
        if d is None or d.load.broken_files or not d.load.files:
            return None
        return set(d.problems) | set(d.load.invalid_names)


def _problem_text(problems: list[Problem]) -> str:
    return "; ".join(p.format() for p in problems if p.severity == "error") or "invalid"


def compute(paths: list[str], config: Config, inventory: Inventory, seen: Mapping[str, Seen], *,
            ports_in_use: Callable[[], set[int]] = listening_ports, only: set[str] | None = None,
            awake: Collection[str] | None = None, idle_reasons: Mapping[str, str] | None = None,
            local: bool = True, requests: Mapping[str, Request] | None = None,
            fetches: Fetcher | None = None) -> Pass:
    """Observe the manifests and the host against `seen`, and plan. Never raises for bad input.
    `local=False`: a preview for another host (`plan --inventory FILE`): no check of this machine's
    binaries or listening ports.
    `awake`: on-demand models the router wants running (None: keep the running ones, start none);
    `idle_reasons`: why an on-demand model left `awake` (idle, evicted), shown as its stop reason;
    `requests`: `down` / `up` / `restart` asked for this pass (plan inputs).
    `fetches`: the fetch owner (fetching.py): a hub or URL source is started on its files in the store, and a
    model whose files are not there yet is Downloading (None: rendered as its model_path equivalent, as
    `plan` without a daemon shows it)."""
    if not local:
        config = for_another_host(config)
    ours = {s.port for s in seen.values() if s.running and s.port}
    foreign = (ports_in_use() if local else set()) - ours
    held = {name: s.port for name, s in seen.items() if s.port}
    sources = SourceFiles(fetches)
    desired, wants = _desired_and_wants(paths, config, inventory, seen, held, foreign, awake, local,
                                        sources.local_path if fetches is not None else None,
                                        sources.hub_facts if fetches is not None else None)
    sources.mark(wants)
    decls = {d.name: d for d in desired.here}  # with this host's spec.overrides
    for name in set(decls) & set(wants):
        wants[name] = replace(wants[name], settings=in_place_settings(decls[name]))
    for name in desired.dormant & set(wants):
        why = (idle_reasons or {}).get(name) or IDLE_REASON
        wants[name] = replace(wants[name], idle=why)
    wants = raycluster.wait_for_head(wants, seen)
    invalid = {name: _problem_text(probs) for name, probs in desired.problems.items() if name not in wants}
    broken: dict[str, str] = {}
    for f in desired.load.broken_files:
        texts = [p.format() for p in desired.load.problems if p.file == f and p.severity == "error"] or \
            [p.format() for p in desired.load.problems if p.file == f]  # skipped by the walk (a link outside)
        broken[f] = "; ".join(texts) or f"{f}: cannot be parsed"
    no_files = not desired.load.files
    guard = empty_guard(paths) if not paths or (no_files and not config.reconciler.prune_empty) else None
    elsewhere = {d.name: NotHere(desired.elsewhere[d.name], d.spec.hosts.describe() if d.spec.hosts else None)
                 for d in desired.load.models if d.name in desired.elsewhere}
    result = plan(wants, seen, invalid=invalid, broken_files=broken, prune_guard=guard, only=only, requests=requests,
                  elsewhere=elsewhere)
    surges = strategy.choose(result, desired, wants, seen, foreign, (config.ports.start, config.ports.end))
    if guard and paths and any(a.cause == Cause.PRUNE_GUARD for a in result.actions):
        result.notes.append(f"the manifests {'directory' if len(paths) == 1 else 'directories'} "
                            f"{', '.join(paths)} {'holds' if len(paths) == 1 else 'hold'} no manifest: nothing "
                            "is stopped (an empty directory may be a failed mount); to stop the models, run "
                            "`xgen-declare down` or set reconciler.prune_empty: true")
    if desired.ledger is not None:
        result.ledger = desired.ledger
        result.notes.extend(f"placement: {n}" for n in desired.ledger.notes)
    result.notes.extend(raycluster.notes(desired.rendered))
    result.notes.extend(f"names: {c}" for c in name_conflicts(desired))
    result.notes.extend(f"overrides: {name}: {text}" for name, texts in sorted(desired.overrides.items())
                        for text in texts)
    result.notes.extend(f"store: {d.name}: {d.spec.source.written_as()} names a hub repository: "
                        f"fetched through the store as {d.spec.source.text} (pinned to a commit by the first "
                        "fetch), never by the backend" for d in desired.here if d.spec.source_implied)
    result.notes.extend(sources.offline_notes())
    problems = [p.format() for p in desired.load.problems if p.severity == "error"]
    if desired.unported:
        problems.append(ports_problem(desired))
    return Pass(result, desired, wants, problems, surges, sources.waiting, sources.asked)


class SourceFiles:
    """One pass's view of the fetches: the local path of each source in the store (asked by build_desired),
    and the models still waiting for theirs (Downloading, or Blocked with the fetch's reason)."""

    def __init__(self, fetches: Fetcher | None) -> None:
        self.fetches = fetches
        self.waiting: dict[str, Source] = {}
        self.asked: dict[str, Source] = {}  # every remote source of this pass (done or not): what stays fetched
        self.why: dict[str, tuple[str | None, str | None]] = {}  # name -> (downloading text, blocked reason)
        self.found: dict[str, tuple[Source, Download]] = {}  # name -> its source and fetch as this pass saw them

    def offline_notes(self) -> list[str]:
        """Offline (store.offline, HF_HUB_OFFLINE), one note per model started from what the store holds; a
        model whose files are not there is Blocked, its action says why."""
        why = offline_why(self.fetches.store) if self.fetches is not None else None
        if why is None:
            return []
        return [in_store_offline(name, src, d, why) for name, (src, d) in sorted(self.found.items())
                if d.phase == DONE]

    def local_path(self, decl: ModelDecl) -> str | None:
        src = decl.spec.source
        if self.fetches is None or src is None or not src.is_remote:
            return None
        self.asked[decl.name] = src
        token, problem = read_token(src, decl.file, decl.line_of("source"))
        if src.implied:  # a model_path hub id: the token its backend was given (env HF_TOKEN), if any
            token = implied_token(decl.spec.env)
        if problem is not None:
            self.waiting[decl.name] = src
            self.why[decl.name] = (None, f"{problem.field}: {problem.message} ({problem.hint})")
            return None
        d = self.fetches.want(src, token)
        self.found[decl.name] = (src, d)
        if d.phase == DONE and d.path:
            self.waiting.pop(decl.name, None)
            self.why.pop(decl.name, None)
            return d.path
        self.waiting[decl.name] = src
        self.why[decl.name] = (None, d.text()) if d.phase == FETCH_BLOCKED else (d.text(), None)
        return None

    def hub_facts(self, decl: ModelDecl) -> HubFacts | None:
        """The hub's metadata of a hub source not in the store yet (a URL source: its GGUF header), for the
        memory ledger (hubfacts.py)."""
        src, meta = decl.spec.source, self.fetches.metadata if self.fetches is not None else None
        if meta is None or src is None or src.kind not in ("hf", "url"):
            return None
        token, problem = read_token(src, decl.file, decl.line_of("source"))
        if problem is not None:
            return HubFacts(src.text, reason=f"{problem.field}: {problem.message}")
        if self.fetches.network and src.kind == "hf":  # a fetch resolves a branch the store holds: its files
            found = stored_facts(src, self.fetches.stored(src))
            if found is not None:
                return found
        d = self.fetches.get(src)  # the daemon's fetch of it: a small one is placed from its files soon
        return meta.get(src, token, network=meta.worth_reading(d.total if d is not None else None))

    def mark(self, wants: dict[str, Want]) -> None:
        for name, (downloading, blocked) in self.why.items():
            if name in wants:
                w = wants[name]
                wants[name] = replace(w, downloading=downloading, blocked=w.blocked or blocked)


def name_conflicts(desired: Desired) -> list[str]:
    """Aliases and model ids two models claim (desired/served.py): the router sends them to one; said here
    so that `plan`, the log and the API's plan show it."""
    decls = desired.here  # what the router's table is built from (router/ondemand.py)
    return claims({d.name: d.spec.alias for d in decls}, decls)[1]


def ports_problem(desired: Desired) -> str:
    """The one line for a full port range: the config's field, the models left Blocked, what to do."""
    start, end = desired.port_range or (0, 0)
    names = ", ".join(desired.unported)
    return (f"xgen-declare.yaml: ports: no free port in {start}-{end} for: {names} (Blocked; the other models "
            f"start) (widen ports: in xgen-declare.yaml, or give {names} an explicit spec.port)")


def empty_guard(paths: list[str]) -> str:
    """Why models no manifest declares are kept: no manifest file at all (README: the reconciler)."""
    if not paths:  # `down` with no manifests dir recorded: nothing declares anything, nothing may be pruned
        return "kept: no manifests directory is known (give DIR to plan with manifests)"
    what = "missing" if not any(os.path.exists(p) for p in paths) else "empty"
    return f"kept: the manifests directory is {what} (reconciler.prune_empty is false)"


def _desired_and_wants(paths: list[str], config: Config, inventory: Inventory, seen: Mapping[str, Seen],
                       held: dict[str, int], foreign: set[int],
                       awake: Collection[str] | None = None, local: bool = True,
                       local_path: Callable[[ModelDecl], str | None] | None = None,
                       hub: Callable[[ModelDecl], HubFacts | None] | None = None) -> tuple[Desired, dict[str, Want]]:
    """Render with the memory ledger. Running models count with their measured buffers; when one of
    them will be replaced (its spec changed), the ledger is built again with its prediction instead."""
    changing: frozenset[str] = frozenset()
    for _ in range(2):
        desired = build_desired(paths, config, inventory, held_ports=held, taken_ports=foreign, seen=seen,
                                changing=changing, awake=awake, local_path=local_path, hub=hub)
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


# ---- the executor ----------------------------------------------------------------------------------

def execute(sup: Supervisor, p: Plan, specs: Mapping[str, Rendered], wants: Mapping[str, Want]) -> None:
    """Carry the plan's actions out, in its order (stops, restarts, starts, ...). One model's trouble
    never stops the rest."""
    for a in p.actions:
        try:  # a model waiting for its files takes no spec: a crash of its old process restarts the old one
            spec = None if a.cause == Cause.DOWNLOADING else specs.get(a.name)
            _execute_one(sup, a, spec, wants.get(a.name))
        except Exception:
            log.exception("%s: cannot %s", a.name, a.kind)
    sup.publish_all()  # the manifest errors, holds and flags the actions set, for readers off the loop


def _execute_one(sup: Supervisor, a: Action, spec: Rendered | None, want: Want | None) -> None:
    proc = sup.proc(a.name, create=a.kind != STOP and a.cause != Cause.NOT_HERE)  # no record for another host's
    if proc is None:
        return
    surging = a.surge or a.cause == Cause.SURGING
    if proc.successor is not None and not surging:  # a newer spec, a revert, a stop: the surge ends
        sup.abort_surge(proc, f"{a.kind}: {a.reason}")
    if a.retry:
        sup.retry_failed(proc)
    if spec is not None and not surging:  # a surge's spec is the successor's; the old process keeps its own
        sup.take_spec(proc, spec, want)
    if a.release_hold:
        sup.release_hold(proc)
    proc.rec.manifest_error = a.manifest_error
    if a.kind in (KEEP, UPDATE) and not a.idle:
        sup.cancel_drain(proc, a.reason)
    if a.kind == STOP:
        sup.stop(a.name, a.reason, forget=a.forget, hold=a.hold, idle=a.idle)
    elif a.kind == RESTART and a.surge and spec is not None:
        sup.surge(proc, spec, want, a.reason)
    elif a.kind == RESTART:
        sup.restart(a.name, a.reason)
    elif a.kind == START:
        sup.start(proc, a.reason, count=a.cause == Cause.PROCESS_GONE)
    elif a.kind == BLOCKED:
        sup.block(proc, a.reason)
    elif a.kind == UPDATE:
        sup.update_in_place(proc, a.reason)
    elif a.idle:
        sup.idle(proc, a.reason)
    elif a.cause == Cause.DOWNLOADING:
        sup.downloading(proc, a.reason)
    else:
        if a.hold:
            sup.hold(proc)
        sup.keep(proc, a.reason, settle_stopped=a.cause == Cause.DISABLED)
    if a.name in sup.procs:
        sup.save(proc.rec)


class PlanLog:
    """The one plan logger: changes always; problems, blocked models and notes once, and again only when
    they change (a daemon plans every few seconds)."""

    def __init__(self) -> None:
        self._last: list[str] = []

    def log(self, result: Pass) -> None:
        p = result.plan
        for a in p.changes:
            log.info("apply: %s", a.format())
        sticky = [a.log_line() for a in p.actions if a.manifest_error]
        sticky += [a.format() for a in p.by_kind(BLOCKED)]
        sticky += list(p.notes) + list(result.problems)
        if p.ledger is not None:
            sticky += [f"{name}: {w}" for name, w in sorted(p.ledger.warnings.items())]
        for line in sticky:
            if line not in self._last:
                log.warning("%s", line)
        self._last = sticky


def converge(sup: Supervisor, paths: list[str], config: Config, inventory: Inventory, plan_log: PlanLog, *,
             only: set[str] | None = None, awake: Collection[str] | None = None,
             idle_reasons: Mapping[str, str] | None = None,
             requests: Mapping[str, Request] | None = None, fetches: Fetcher | None = None) -> Pass:
    """observe -> plan -> execute, once. A process found gone ends through the supervisor's one exit path
    before the plan sees it (no `process gone` start past the crash path and its back-off)."""
    sup.settle_exits()
    result = compute(paths, config, inventory, sup.observed(), only=only, awake=awake, idle_reasons=idle_reasons,
                     requests=requests, fetches=fetches)
    plan_log.log(result)
    specs = {**(result.desired.rendered if result.desired else {}), **result.surges.specs}
    for name in result.fetching:  # its files are not in the store: a crash restarts what runs, never a hub spec
        specs.pop(name, None)
    execute(sup, result.plan, specs, {**result.wants, **result.surges.wants})
    return result


def converge_once(env: Env, *, only: set[str] | None = None, wait_ready: bool = True,
                  timeout: float = 900.0, requests: Mapping[str, Request] | None = None) -> tuple[Pass, Supervisor]:
    """apply without a daemon: lock, adopt, plan, execute, tick until stops (and starts) settle."""
    env.store.lock("stop the daemon first, or let it converge (it watches the manifests dir)")
    try:
        record_paths(env)
        sup = Supervisor(env.store, env.config.reconciler, one_shot=True, proc_root=env.proc_root)
        sup.load()
        fetched = threading.Event()
        # `down` fetches nothing (a look in the store); apply, `up` and `restart` fetch first, then start
        network = not requests or any(r != Request.DOWN for r in requests.values())
        fetches = store_fetcher(env, network=network, on_change=lambda key: fetched.set())
        plan_log, inventory = PlanLog(), env.inventory()
        result = converge(sup, env.paths, env.config, inventory, plan_log, only=only, requests=requests,
                          fetches=fetches)
        deadline = time.monotonic() + timeout
        while result.fetching and fetches.busy() and time.monotonic() < deadline:  # fetch first, then start
            if fetched.wait(0.2):
                fetched.clear()
                result = converge(sup, env.paths, env.config, inventory, plan_log, only=only, fetches=fetches)
            sup.tick()
        if result.fetching and network:  # the last fetch ended between two looks
            result = converge(sup, env.paths, env.config, inventory, plan_log, only=only, fetches=fetches)
        fetches.close(timeout=0)
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
