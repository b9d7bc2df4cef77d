"""Which way each planned restart rolls out: `surge` (the new process starts beside the old one on a spare
port and takes over when Ready) or `recreate` (drain, stop, start), from the manifest's
`rollout.strategy` and what the host allows. Runs after the pure plan, with the desired state at hand
(it renders a surging model a second time, on its spare port).

    surge     only for a spec change of a Ready model whose port the manifest does not pin, without RPC
              workers or Ray; both processes must fit at once in the memory ledger (the old one counts
              with its measured buffers, else with the new one's prediction; a CPU-only model counts host
              memory). If it cannot, the restart is Blocked and the old process keeps serving; placement
              unknown: surge, with a note;
    auto      surge when all of the above hold, otherwise recreate; the reason says which and why;
    recreate  as planned.

A surge under way (the successor's spec hash and port in `Seen`) is kept while the manifest still wants
that spec; any other action ends it (the executor).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from xgen_declare.desired.ports import PortAssignment
from xgen_declare.errors import RenderError
from xgen_declare.placement.buffers import total_bytes
from xgen_declare.processes.spec import Rendered, Seen, Want
from xgen_declare.reconciler.plan import BLOCKED, KEEP, KINDS, RESTART, Action, Cause, Plan
from xgen_declare.states import State

MIB = 1 << 20


@dataclass
class Surges:
    """name -> the spec (on its spare port) and want a surge runs instead of the desired ones."""

    specs: dict[str, Rendered] = field(default_factory=dict)
    wants: dict[str, Want] = field(default_factory=dict)


def choose(p: Plan, desired: Any, wants: Mapping[str, Want], seen: Mapping[str, Seen], taken: set[int],
           port_range: tuple[int, int]) -> Surges:
    """Rewrite `p`'s restarts by strategy (in place); the surges to run. `taken`: ports not to use."""
    out = Surges()
    taken = set(taken) | {s.port for s in seen.values() if s.port} | \
        {s.surge_port for s in seen.values() if s.surge_port} | {r.port for r in desired.rendered.values()}
    for i, a in enumerate(p.actions):
        s, w = seen.get(a.name), wants.get(a.name)
        if a.kind != RESTART or a.cause != Cause.CHANGED or s is None or w is None:
            continue
        if s.surge_hash and s.surge_port:
            again = _render(desired, a.name, s.surge_port)
            if again is not None and again.spec_hash() == s.surge_hash:
                p.actions[i] = Action(KEEP, a.name, f"surge under way: spec {s.surge_hash} starts on port "
                                      f"{s.surge_port} beside the serving process ({a.reason})", a.changes,
                                      cause=Cause.SURGING)
                continue
        p.actions[i] = _decide(a, s, w, desired, taken, port_range, out)
    p.actions.sort(key=lambda a: (KINDS.index(a.kind), a.name))
    return out


def _decide(a: Action, s: Seen, w: Want, desired: Any, taken: set[int], port_range: tuple[int, int],
            out: Surges) -> Action:
    strategy = w.settings.strategy if w.settings is not None else "auto"
    if strategy == "recreate":
        return a
    why = _cannot(a.name, s, desired)
    fits, fit_text = _fits(a.name, s, desired)
    if why is None and fits is False:
        why = fit_text
    if why is None and fits is None and strategy == "auto":
        why = "placement unknown: the memory ledger cannot tell whether two processes fit"
    port = None if why else _spare(taken, port_range)
    if why is None and port is None:
        why = f"no spare port in the ports range {port_range[0]}-{port_range[1]} for the second process"
    spec = _render(desired, a.name, port) if port is not None else None
    if why is None and spec is None:
        why = "the spec cannot be rendered on a spare port"
    if why is not None:
        if strategy == "auto":
            return replace(a, reason=f"{a.reason}; auto: recreate ({why})")
        return Action(BLOCKED, a.name, f"rollout.strategy surge: {why}; keeping the running process (use "
                      "rollout.strategy auto or recreate)", a.changes, cause=Cause.BLOCKED)
    assert port is not None and spec is not None
    taken.add(port)
    out.specs[a.name] = spec
    out.wants[a.name] = replace(w, spec_hash=spec.spec_hash(), argv=tuple(spec.argv), port=port,
                                planned_hash=w.spec_hash)
    note = "" if fits else "; placement unknown: no memory check"
    how = "auto: surge, the" if strategy == "auto" else "surge: the"
    return replace(a, surge=True, reason=f"{a.reason}; {how} new process starts on port {port} beside the old "
                   f"one{note}")


def _cannot(name: str, s: Seen, desired: Any) -> str | None:
    r: Rendered | None = desired.rendered.get(name)
    if r is None:
        return "not rendered"
    if r.port_source == "manifest":
        return f"spec.port pins port {r.port}: two processes cannot share it"
    if r.workers:
        return "its llama.cpp RPC workers listen on fixed ports"
    res = desired.resolved.get(name)
    if res is not None and res.spec.distributed is not None:
        return "a distributed model"
    if s.state != State.READY:
        return f"the running process is {s.state.value}, not Ready"
    return None


def _fits(name: str, s: Seen, desired: Any) -> tuple[bool | None, str]:
    """Both processes at once in the ledger: True, False (with why), or None (placement unknown)."""
    ledger = desired.ledger
    entry = ledger.entry(name) if ledger is not None else None
    if entry is None or entry.source == "unknown" or not entry.use:
        return None, ""
    old = total_bytes(s.buffers) if s.buffers else dict(entry.use)  # the new one's prediction as estimate
    for key, amount in sorted(old.items()):
        free = ledger.remaining(key)
        if free is None or not amount:
            continue
        if amount > free:
            return False, (f"the second process does not fit: {amount / MIB:.0f} MiB more on {key}, "
                           f"{free / MIB:.0f} MiB left")
    return True, ""


def _spare(taken: set[int], port_range: tuple[int, int]) -> int | None:
    start, end = port_range
    return next((port for port in range(start, end + 1) if port not in taken), None)


def _render(desired: Any, name: str, port: int) -> Rendered | None:
    res = desired.resolved.get(name)
    if res is None or desired.renderer is None:
        return None
    try:
        return desired.renderer.render(res, PortAssignment(port, "surge"))
    except RenderError:
        return None
