"""The pure planner: what is wanted + what is observed -> actions, each with a human reason.

No I/O here: the reconciler gathers `Want`s (rendered models, binary identity, whether a start would be
blocked) and `Seen`s (the state records, with liveness checked), and `plan()` decides. Rules:

  * a running model is restarted only when its spec hash (argv, env, port, GPU set, host, backend) or
    its binary identity changed; the reason names what changed ("argv changed: --ctx-size 4096 → 8192");
  * a change only xgen-declare reads (rollout.IN_PLACE_FIELDS: labels, activation, idle_timeout, ...)
    is an `update` in place: the process is not touched;
  * a model whose manifest is invalid (or whose file cannot be parsed) keeps its last good process;
  * a model no manifest declares is stopped, unless `prune_guard` says the source looks broken (an empty
    or missing manifests dir): then nothing is pruned, and a running model shows the guard as its
    manifest_error (`status`);
  * `down` holds a model stopped until `up` or until its spec changes;
  * stops come before restarts, restarts before starts, so freed ports and GPUs can be reused;
  * a model the memory ledger cannot fit arrives as `Want.blocked` (the ledger is built beforehand, in
    placement/, and carried on the Plan for display only);
  * an on-demand model nobody asked for arrives as `Want.idle` (why it is not wanted now): it is kept
    stopped, or stopped, and shows `Idle` (`Action.idle`);
  * a model whose source is not in the store yet arrives as `Want.downloading` (the fetch's progress): it is
    kept `Downloading`, not started; a running one keeps serving its old files until the new ones are
    verified (then the usual restart, recreate or surge, follows); a fetch that failed for good arrives as
    `Want.blocked`;
  * a model whose `spec.hosts` selector does not match this host arrives as `NotHere` (never as a Want):
    nothing is started, and it is never "removed". A running one is stopped (and forgotten) only when the
    selector is not the one it was started under (the manifest moved it away); when the selector is the
    same, the host's labels changed (a GPU gone, a label edited) and the process stays until `down`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Mapping

from xgen_declare.reconciler.rollout import settings_changes
from xgen_declare.processes.spec import Seen, Want
from xgen_declare.states import RUNNING_STATES, State

class ActionKind(StrEnum):
    START = "start"
    RESTART = "restart"
    STOP = "stop"
    KEEP = "keep"
    BLOCKED = "blocked"
    UPDATE = "update"


START, RESTART, STOP, KEEP, BLOCKED, UPDATE = (ActionKind.START, ActionKind.RESTART, ActionKind.STOP,
                                               ActionKind.KEEP, ActionKind.BLOCKED, ActionKind.UPDATE)
KINDS = (STOP, RESTART, START, UPDATE, BLOCKED, KEEP)  # execution and display order


class Cause(StrEnum):
    """Why an action is planned, as data: the executor decides on this, never on the reason's text."""

    NEW = "new"                     # first start of a model
    CHANGED = "changed"             # spec, binary or in-place settings changed
    UNCHANGED = "unchanged"
    # a running state whose process is gone: its start counts as a restart. A daemon's pass never plans it
    # for a process it supervised (converge() ends it through the supervisor's exit path first, which
    # leaves CrashLoopBackOff); one-shot `apply` does, for a process that died while no daemon watched
    PROCESS_GONE = "process_gone"
    RECOVERED = "recovered"         # no longer blocked / invalid / failed / held; woken; not running
    DISABLED = "disabled"           # enabled: false
    HELD = "held"                   # a `down` hold
    REQUESTED = "requested"         # `restart` / `down` / `up` asked for it
    IDLE = "idle"                   # on-demand and not wanted now
    DOWNLOADING = "downloading"     # its source is being fetched into the store: started once verified
    ROLLED_BACK = "rolled_back"     # this spec's rollout failed: the last good one keeps serving
    BACKING_OFF = "backing_off"     # crash loop back-off, or failed with this spec
    SURGING = "surging"             # a surge to the wanted spec is under way (strategy.py)
    BLOCKED = "blocked"             # the host cannot run it now
    INVALID = "invalid"             # the manifest is invalid (or its file cannot be parsed)
    PRUNE_GUARD = "prune_guard"     # kept: the manifests dir is empty or missing
    REMOVED = "removed"             # no manifest declares it
    NOT_HERE = "not_here"           # spec.hosts does not select this host
    OTHER = "other"


class Request(StrEnum):
    """What `down` / `up` / `restart` (and the API's unload) ask of a model: an input of the plan, never an
    edit of its record."""

    DOWN = "down"
    UP = "up"
    RESTART = "restart"
    # the API removed the manifest it wrote: stop and forget the model even where the prune guard (an emptied
    # manifests dir) or an unparsable file would keep it; a model still declared is not touched
    UNLOAD = "unload"


VERB_REQUESTS = frozenset({Request.DOWN, Request.UP, Request.RESTART})  # what the CLI's verbs may ask


@dataclass(frozen=True)
class NotHere:
    """A declared model that `spec.hosts` keeps off this host: why (the requirement that failed, with this
    host's value) and the selector as text (compared with the one recorded when it started)."""

    reason: str
    hosts: str | None


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    name: str
    reason: str
    changes: tuple[str, ...] = ()
    manifest_error: str | None = None   # set when the manifest is invalid but the model is kept
    release_hold: bool = False          # a `down` hold ends (manifest changed, `up`, `restart`)
    forget: bool = False                # no manifest declares it: drop its record once stopped
    idle: bool = False                  # an on-demand model not wanted now: it ends (or stays) Idle
    cause: Cause = Cause.OTHER
    hold: bool = False                  # `down`: record the hold (kept stopped until `up` or a new spec)
    retry: bool = False                 # `restart`: try a spec whose rollout failed again
    surge: bool = False                 # the restart starts the new process beside the old one (strategy.py)

    def format(self) -> str:
        return f"{self.kind:<8} {self.name}: {self.reason}"

    def log_line(self) -> str:
        """'NAME: reason: manifest_error' for the log (the reason alone when it is the problem)."""
        if self.manifest_error in (None, self.reason):
            return f"{self.name}: {self.reason}"
        return f"{self.name}: {self.reason}: {self.manifest_error}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["changes"] = list(self.changes)
        return data


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ledger: Any = None  # placement.ledger.Ledger: memory per device across the models (shown, not acted on)

    def by_kind(self, kind: str) -> list[Action]:
        return [a for a in self.actions if a.kind == kind]

    def get(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.kind in (START, RESTART, STOP, UPDATE)]

    def summary(self) -> str:
        counts = {k: len(self.by_kind(k)) for k in KINDS}
        elsewhere = sum(1 for a in self.actions if a.kind == KEEP and a.cause == Cause.NOT_HERE)
        update = f", {counts[UPDATE]} to update in place" if counts[UPDATE] else ""
        other = f", {elsewhere} not for this host" if elsewhere else ""
        return (f"{counts[START]} to start, {counts[RESTART]} to restart, {counts[STOP]} to stop{update}, "
                f"{counts[BLOCKED]} blocked, {counts[KEEP] - elsewhere} unchanged{other}")

    def format(self) -> str:
        lines = [a.format() for a in self.actions]
        lines.extend(f"note: {n}" for n in self.notes)
        table = self.ledger.format() if self.ledger is not None else ""
        if table:
            lines.append(table)
        lines.append(self.summary())
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"actions": [a.to_json() for a in self.actions], "notes": list(self.notes),
                "ledger": self.ledger.to_json() if self.ledger is not None else None, "summary": self.summary()}


def plan(wants: Mapping[str, Want], seen: Mapping[str, Seen], *,
         invalid: Mapping[str, str] | None = None, broken_files: Mapping[str, str] | None = None,
         prune_guard: str | None = None, only: set[str] | None = None,
         requests: Mapping[str, Request] | None = None, elsewhere: Mapping[str, NotHere] | None = None) -> Plan:
    """`invalid`: name -> problem text for manifests that exist but are invalid (or fail to render).
    `broken_files`: file -> problem text for files that cannot be parsed at all (names unknown).
    `prune_guard`: when set, models no manifest declares are kept, with this as the reason (and as the
    manifest_error of those running)
    `only`: restrict the plan to these names.
    `requests`: name -> `down` / `up` / `restart` asked for this pass.
    `elsewhere`: name -> NotHere for the declared models whose spec.hosts does not select this host."""
    invalid = invalid or {}
    elsewhere = elsewhere or {}
    broken_files = broken_files or {}
    requests = requests or {}
    out = Plan()
    names = set(wants) | set(invalid) | set(seen) | set(elsewhere)
    if only is not None:
        names &= only
    for name in sorted(names):
        s = seen.get(name)
        request = requests.get(name)
        if name in wants:
            out.actions.append(_plan_wanted(wants[name], s, request))
        elif name in invalid:
            out.actions.append(_plan_invalid(name, s, invalid[name], request))
        elif name in elsewhere:
            out.actions.append(_plan_not_here(name, s, elsewhere[name], request))
        else:
            out.actions.append(_plan_undeclared(s, broken_files, prune_guard, request))  # type: ignore[arg-type]
    out.actions.sort(key=lambda a: (KINDS.index(a.kind), a.name))
    return out


def _down(name: str, running: bool) -> Action:
    if running:
        return Action(STOP, name, "`down`", cause=Cause.REQUESTED, hold=True)
    return Action(KEEP, name, "held by `down` (run `xgen-declare up` to start it)", cause=Cause.REQUESTED, hold=True)


def _plan_wanted(w: Want, s: Seen | None, request: Request | None = None) -> Action:
    running = bool(s and s.running)
    if request == Request.DOWN:
        return _down(w.name, running)
    action = _wanted(w, s, running, request)
    if request == Request.RESTART:
        action = replace(action, retry=True)
        again = running or action.cause in (Cause.ROLLED_BACK, Cause.BACKING_OFF)
        if action.kind in (KEEP, UPDATE) and again and not action.idle and w.enabled and \
                action.cause != Cause.DOWNLOADING:  # nothing to restart on before the files are there
            kind = RESTART if running else START
            action = replace(action, kind=kind, reason="`restart`", cause=Cause.REQUESTED, changes=())
    if request in (Request.UP, Request.RESTART) and s is not None and s.held:
        action = replace(action, release_hold=True)
    return action


def _wanted(w: Want, s: Seen | None, running: bool, request: Request | None) -> Action:
    if not w.enabled:
        if running:
            return Action(STOP, w.name, "disabled in the manifest (enabled: false)", cause=Cause.DISABLED)
        return Action(KEEP, w.name, "disabled in the manifest (enabled: false)", cause=Cause.DISABLED)
    released = request in (Request.UP, Request.RESTART)
    if s is not None and s.held and not released:
        # a spec whose files are not fetched yet cannot be compared with the held one: the hold stays
        if s.held_hash == w.spec_hash or w.downloading:
            if running:
                return Action(STOP, w.name, "held by `down`", cause=Cause.HELD)
            return Action(KEEP, w.name, "held by `down` (run `xgen-declare up` to start it)", cause=Cause.HELD)
        release = True
    else:
        release = False
    if w.idle:
        if running:
            return Action(STOP, w.name, w.idle, idle=True, release_hold=release, cause=Cause.IDLE)
        return Action(KEEP, w.name, w.idle, idle=True, release_hold=release, cause=Cause.IDLE)
    if s is not None and s.failed_hash and s.failed_hash == w.spec_hash and (
            running or s.state == State.CRASH_LOOP_BACK_OFF):
        return Action(KEEP, w.name, f"rolled back: a rollout of this spec ({w.spec_hash}) failed; fix the manifest, or "
                      f"run `xgen-declare restart {w.name}` to try it again", cause=Cause.ROLLED_BACK)
    if w.downloading and not w.blocked:
        if running:  # a new revision: the old process serves until the new files are verified
            return Action(KEEP, w.name, f"{w.downloading}; the running process serves until the new files are "
                          "verified", release_hold=release, cause=Cause.DOWNLOADING)
        return Action(KEEP, w.name, w.downloading, release_hold=release, cause=Cause.DOWNLOADING)
    if running:
        changes = describe_changes(s, w)  # type: ignore[arg-type]
        if not changes:
            in_place = settings_changes(s.settings, w.settings)  # type: ignore[union-attr]
            if in_place:
                return Action(UPDATE, w.name, "update in place: " + "; ".join(in_place), tuple(in_place),
                              cause=Cause.CHANGED)
            return Action(KEEP, w.name, "unchanged", cause=Cause.UNCHANGED)
        if w.blocked:
            return Action(BLOCKED, w.name, f"{w.blocked}; keeping the running process", tuple(changes),
                          cause=Cause.BLOCKED)
        return Action(RESTART, w.name, "; ".join(changes), tuple(changes), cause=Cause.CHANGED)
    if w.blocked:
        return Action(BLOCKED, w.name, w.blocked, release_hold=release, cause=Cause.BLOCKED)
    if release:
        return Action(START, w.name, "manifest changed since `down`: hold released", release_hold=True,
                      cause=Cause.CHANGED)
    if s is None:
        return Action(START, w.name, "new model", cause=Cause.NEW)
    same = s.spec_hash == w.spec_hash and (s.binary_id is None or s.binary_id == w.binary_id)
    if s.state == State.CRASH_LOOP_BACK_OFF and same:
        return Action(KEEP, w.name, "crash loop back-off: the supervisor retries after the delay",
                      cause=Cause.BACKING_OFF)
    if s.state == State.FAILED and same:
        return Action(KEEP, w.name, "failed with this spec (fix the manifest or run `xgen-declare restart "
                                    f"{w.name}`)", cause=Cause.BACKING_OFF)
    if s.state == State.BLOCKED:
        return Action(START, w.name, "no longer blocked", cause=Cause.RECOVERED)
    if s.state == State.DOWNLOADING:
        return Action(START, w.name, "source fetched: files verified", cause=Cause.RECOVERED)
    if s.state == State.INVALID:
        return Action(START, w.name, "manifest valid again", cause=Cause.RECOVERED)
    if s.state in RUNNING_STATES:
        return Action(START, w.name, f"process gone (was {s.state.value})", cause=Cause.PROCESS_GONE)
    if not same and s.state in (State.CRASH_LOOP_BACK_OFF, State.FAILED):
        return Action(START, w.name, "spec changed since the last failure", cause=Cause.CHANGED)
    if s.state == State.IDLE:
        return Action(START, w.name, "on-demand: woken by a request", cause=Cause.RECOVERED)
    if s.held:
        return Action(START, w.name, f"`{request}`: hold released", cause=Cause.REQUESTED)
    return Action(START, w.name, "not running", cause=Cause.RECOVERED)


def _plan_invalid(name: str, s: Seen | None, problem: str, request: Request | None = None) -> Action:
    running = bool(s is not None and s.running)
    if request == Request.DOWN:
        return replace(_down(name, running), manifest_error=problem)
    if request == Request.RESTART and running:  # the last good spec, started again
        return Action(RESTART, name, "`restart` (manifest invalid: the last good spec)", manifest_error=problem,
                      cause=Cause.REQUESTED, release_hold=bool(s and s.held), retry=True)
    release = request == Request.UP and bool(s and s.held)
    if running:
        return Action(KEEP, name, "manifest invalid: keeping last good process", manifest_error=problem,
                      cause=Cause.INVALID, release_hold=release)
    return Action(KEEP, name, "manifest invalid: nothing running", manifest_error=problem, cause=Cause.INVALID,
                  release_hold=release)


def _plan_not_here(name: str, s: Seen | None, why: NotHere, request: Request | None = None) -> Action:
    reason = f"not for this host: {why.reason}"
    if s is None:
        return Action(KEEP, name, reason, cause=Cause.NOT_HERE)
    if request == Request.UNLOAD:
        return Action(STOP, name, "unloaded through the API", forget=True, cause=Cause.REQUESTED)
    if request == Request.DOWN:
        return _down(name, s.running)
    recorded = s.settings.hosts if s.settings is not None else None
    if s.running and recorded == why.hosts:  # the labels changed, not the manifest
        return Action(KEEP, name, f"{reason}; kept running: its spec.hosts did not change, this host's labels "
                      f"did (run `xgen-declare down {name}` to stop it)", cause=Cause.NOT_HERE)
    if s.running:
        return Action(STOP, name, reason, forget=True, cause=Cause.NOT_HERE)
    if s.held:
        return Action(KEEP, name, f"{reason}; held by `down`", cause=Cause.NOT_HERE)
    return Action(STOP, name, f"{reason} (not running: forget it)", forget=True, cause=Cause.NOT_HERE)


def _plan_undeclared(s: Seen, broken_files: Mapping[str, str], prune_guard: str | None,
                     request: Request | None = None) -> Action:
    if request == Request.UNLOAD:
        return Action(STOP, s.name, "unloaded through the API", forget=True, cause=Cause.REQUESTED)
    kept = None
    if s.file is not None and s.file in broken_files:
        why = "keeping last good process" if s.running else "nothing running"
        kept = Action(KEEP, s.name, f"manifest file cannot be parsed: {why}", manifest_error=broken_files[s.file],
                      cause=Cause.INVALID)
    elif prune_guard:
        kept = Action(KEEP, s.name, prune_guard, manifest_error=prune_guard if s.running else None,
                      cause=Cause.PRUNE_GUARD)
    if kept is not None:  # the model's manifest may be back soon: `down`, `up` and `restart` still apply
        if request == Request.DOWN:
            return replace(_down(s.name, s.running), manifest_error=kept.manifest_error)
        if request == Request.RESTART and s.running:
            return replace(kept, kind=RESTART, reason="`restart` (the last spec)", cause=Cause.REQUESTED,
                           release_hold=s.held, retry=True)
        return replace(kept, release_hold=request == Request.UP and s.held)
    if s.running:
        return Action(STOP, s.name, "manifest removed", forget=True, cause=Cause.REMOVED)
    return Action(STOP, s.name, "manifest removed (not running: forget it)", forget=True, cause=Cause.REMOVED)


# ---- reasons -------------------------------------------------------------------------------------

def describe_changes(s: Seen, w: Want) -> list[str]:
    """Human descriptions of what differs; empty when nothing that matters changed."""
    out: list[str] = []
    hash_changed = s.spec_hash != w.spec_hash
    if hash_changed:
        argv = argv_changes(list(s.argv), list(w.argv))
        if argv:
            out.append("argv changed: " + ", ".join(argv))
        env = sorted(k for k in set(s.env_digest) | set(w.env_digest) if s.env_digest.get(k) != w.env_digest.get(k))
        if env:
            out.append("env changed: " + ", ".join(env))
        if (s.gpus and list(s.gpus)) != (w.gpus and list(w.gpus)):
            out.append(f"gpus changed: {_gpus(s.gpus)} → {_gpus(w.gpus)}")
        if s.backend != w.backend and s.backend:
            out.append(f"backend changed: {s.backend} → {w.backend}")
        if not argv and s.port != w.port:
            out.append(f"port changed: {s.port} → {w.port}")
        if not out:
            out.append("spec changed (secret files or other settings)")
    if s.binary_id and w.binary_id and s.binary_id != w.binary_id:
        exe = w.argv[0] if w.argv else "binary"
        out.append(f"binary changed: {exe} was replaced or upgraded")
    return out


def _gpus(g: tuple[int, ...] | None) -> str:
    return "all" if g is None else json.dumps(list(g))


def _is_flag(arg: str) -> bool:
    if not arg.startswith("-") or arg == "-":
        return False
    try:
        float(arg)
        return False
    except ValueError:
        return True


def _split_argv(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    positional: list[str] = []
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not _is_flag(arg):
            positional.append(arg)
            i += 1
            continue
        j = i + 1
        while j < len(argv) and not _is_flag(argv[j]):
            j += 1
        flags.setdefault(arg, []).append(" ".join(argv[i + 1:j]))
        i = j
    return positional, flags


def argv_changes(old: list[str], new: list[str]) -> list[str]:
    """["--ctx-size 4096 → 8192", "added --parallel 4", "removed --mlock", "binary /a → /b"]."""
    if old == new:
        return []
    old_pos, old_flags = _split_argv(old)
    new_pos, new_flags = _split_argv(new)
    out = []
    for i in range(max(len(old_pos), len(new_pos))):
        a = old_pos[i] if i < len(old_pos) else None
        b = new_pos[i] if i < len(new_pos) else None
        if a != b:
            label = "binary" if i == 0 else f"argument {i}"
            out.append(f"{label} {a or '(none)'} → {b or '(none)'}")
    for flag in list(old_flags) + [f for f in new_flags if f not in old_flags]:
        a, b = old_flags.get(flag), new_flags.get(flag)
        if a == b:
            continue
        if a is None:
            out.append(f"added {flag} {' '.join(b)}".rstrip())  # type: ignore[arg-type]
        elif b is None:
            out.append(f"removed {flag} {' '.join(a)}".rstrip())
        else:
            out.append(f"{flag} {', '.join(a) or '(switch)'} → {', '.join(b) or '(switch)'}")
    if not out:
        out.append("argument order changed")
    return out
