"""On-demand activation, run on the control loop (the only thread that changes the awake set), through
the daemon's `Control` door (reconciler/door.py).

`wake(control, name)` decides whether an on-demand model may start now: it asks for a trial plan
(`control.trial`: observe + memory ledger, no side effect) with the model added to `awake`. When the ledger
blocks it, idle on-demand models are taken out of `awake` one at a time, least recently used first,
until it fits; `always` models and models with requests in flight are never candidates. If even all
candidates would not make room, nothing is stopped and the ledger's reason is returned (the router
answers 503 with it). Otherwise the evicted models leave `awake`, the model joins it, and one
reconcile pass stops the former (→ Idle) and starts the latter (the supervisor waits for freed GPUs).

`tick(control)` (each loop step) lets models idle for their `idle_timeout` leave `awake` the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from xgen_declare.placement.predict import MIB
from xgen_declare.reconciler.apply import Pass
from xgen_declare.reconciler.door import Control
from xgen_declare.states import State
from xgen_declare.router.activity import Tracker
from xgen_declare.router.keys import KeyCache
from xgen_declare.router.table import RouteTable, table_from_decls

log = logging.getLogger("xgen_declare.router")

__all__ = ["OnDemand", "Publisher", "Wake", "shortfall_mib"]


class Publisher(Protocol):
    """Where on-demand starts, idle stops and evictions are told (api/events.py EventBus)."""

    def publish(self, type_: str, **data: object) -> None: ...


@dataclass
class Wake:
    ok: bool
    reason: str = ""
    short_mib: dict[str, float] = field(default_factory=dict)   # device -> MiB missing (ledger refusals)
    evicted: list[str] = field(default_factory=list)


@dataclass
class _Trial:
    blocked: str | None
    by_ledger: bool = False
    short_mib: dict[str, float] = field(default_factory=dict)


def shortfall_mib(ledger, name: str) -> dict[str, float]:
    """Per device, how many MiB the blocked model lacks on top of what the admitted models leave."""
    entry = ledger.entry(name) if ledger is not None else None
    out: dict[str, float] = {}
    if entry is None or not entry.blocked:
        return out
    for key, use in sorted(entry.use.items()):
        cap = ledger.capacity.get(key)
        if cap is None:
            continue
        left = max(cap - ledger.pool_used(key), 0)
        if use > left:
            out[key] = round((use - left) / MIB, 1)
    return out


def fmt_seconds(s: float) -> str:
    return f"{s / 3600:g}h" if s >= 3600 and s % 3600 == 0 else f"{s / 60:g}m" if s >= 60 and s % 60 == 0 \
        else f"{s:.3g}s"


class OnDemand:
    def __init__(self, tracker: Tracker, bus: Publisher | None = None, metrics=None, keys: KeyCache | None = None):
        self.tracker, self.bus, self.metrics, self.keys = tracker, bus, metrics, keys
        self.table: RouteTable | None = None

    # ---- hooks (control loop) --------------------------------------------------------------------
    def on_pass(self, result: Pass | None, seconds: float = 0.0) -> None:
        if result is not None and result.desired is not None:
            kept = {a.name: a.manifest_error for a in result.plan.actions if a.manifest_error}
            # this host's models; those of other hosts only to say so in a 404
            table = table_from_decls(result.desired.here, kept, self.table, result.desired.elsewhere)
            if self.keys is not None:  # the keys before the routes: a request never finds a key unread
                self.keys.refresh(table)
            self.table = table

    def tick(self, d: Control) -> None:
        table = self.table
        if table is None:
            return
        if self.keys is not None:  # a key file changed (or turned into a FIFO): read it here, not in a request
            self.keys.refresh(table)
        stopped = []
        for name in sorted(d.awake):
            route = table.routes.get(name)
            if route is None or not route.on_demand or route.idle_timeout is None:
                continue
            if self.tracker.in_flight(name):
                continue
            idle = self.tracker.idle_seconds(name)
            if idle < route.idle_timeout:
                continue
            d.let_idle(name, f"on-demand: no request for {fmt_seconds(route.idle_timeout)} (idle_timeout)")
            stopped.append(name)
            self._publish("idle_stop", model=name, idle_seconds=round(idle, 1), idle_timeout=route.idle_timeout)
            if self.metrics:
                self.metrics.idle_stops.labels(model=name).inc()
        if stopped:
            log.info("idle: %s", ", ".join(stopped))
            d.reconcile(full=False)

    # ---- wake (control loop, via Daemon.submit) --------------------------------------------------
    def wake(self, d: Control, name: str) -> Wake:
        v = d.live(name)
        if v is not None and v.held:
            return Wake(False, f"{name} is held stopped by `xgen-declare down`; run `xgen-declare up {name}`")
        running = d.running(name)
        if name in d.awake and running:
            return Wake(True)
        trial_awake = set(d.awake) | {name}
        trial = self._trial(d, name, trial_awake)
        evicted: list[str] = []
        if trial.blocked and trial.by_ledger:
            for candidate in self._candidates(d, name):
                evicted.append(candidate)
                trial = self._trial(d, name, trial_awake - set(evicted))
                if not trial.blocked:
                    break
            if trial.blocked:  # the reason with every candidate gone: what no eviction can fix
                return Wake(False, f"{name} does not fit, even with every idle on-demand model stopped: "
                            f"{trial.blocked}", trial.short_mib)
        elif trial.blocked:
            return Wake(False, f"{name} cannot start: {trial.blocked}")
        for victim in evicted:
            d.let_idle(victim, f"on-demand: evicted (least recently used) to make room for {name}")
            self._publish("eviction", model=victim, to_make_room_for=name)
            if self.metrics:
                self.metrics.evictions.labels(model=victim).inc()
        if evicted:
            log.info("evicting %s to make room for %s", ", ".join(evicted), name)
        d.wake_model(name)
        self.tracker.touch(name)
        if not running:
            self._publish("on_demand_start", model=name, evicted=evicted)
        d.reconcile(full=False)
        return Wake(True, evicted=evicted)

    def _trial(self, d: Control, name: str, awake: set[str]) -> _Trial:
        result = d.trial(awake)
        want = result.wants.get(name)
        if want is None:
            return _Trial(f"{name} is not declared by a valid manifest")
        ledger = result.desired.ledger if result.desired is not None else None
        by_ledger = ledger is not None and name in ledger.blocked
        return _Trial(want.blocked, by_ledger, shortfall_mib(ledger, name) if by_ledger else {})

    def _candidates(self, d: Control, name: str) -> list[str]:
        table = self.table or RouteTable()
        out = []
        for other in d.awake:
            route = table.routes.get(other)
            v = d.live(other)
            if other == name or route is None or not route.on_demand or self.tracker.in_flight(other):
                continue
            if v is not None and v.state == State.STOPPING:
                continue
            out.append(other)
        return self.tracker.lru(out)

    def _publish(self, type_: str, **data) -> None:
        if self.bus is not None:
            self.bus.publish(type_, **data)
