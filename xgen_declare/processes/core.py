"""What the supervisor's collaborators (health.py, rollouts.py, surge.py, adoption.py) may call on it,
as a typed Protocol, and the hooks other layers register with it.

The supervisor (supervisor.py) owns the models' `Proc`s, spawns and stops processes and is the one
place a state changes (`set_state`, through `states.transition`); each collaborator owns one job and
reaches the others only through this interface:

  records   RecordWriter (records.py): records and history written, failures retried;
  health    probes, THE exit path of a process that ended, the crash back-off (health.py);
  rollouts  drain before a stop, fields updated in place, a rollout's result and rollback (rollouts.py);
  surges    a new spec started beside the serving process, the swap, the old one's drain (surge.py).

`Hooks` are what the layers above install, through the daemon's door (reconciler/door.py:
`register_router`, `add_event_sink`), never by assigning attributes: the router's requests in flight per
model and per port, the API's rollout events; without them nothing is in flight and events go nowhere.
An event sink that raises is logged and the other sinks still get the event (hooks.py `Registry`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from xgen_declare.config import Reconciler
from xgen_declare.processes.history import Entry
from xgen_declare.processes.hooks import Registry
from xgen_declare.processes.lifecycle import Ending, StopIntent
from xgen_declare.processes.probes import Prober
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.records import RecordWriter
from xgen_declare.processes.rpc_workers import Workers
from xgen_declare.processes.state_store import Record
from xgen_declare.processes.supervised import Proc
from xgen_declare.states import State

EventSink = Callable[..., None]  # fn(type, **data): rollout_started / rollout_succeeded / rollout_failed / rolled_back

log = logging.getLogger("xgen_declare.processes.core")


def _nothing_in_flight(name: str) -> int:
    return 0


def _nothing_at(name: str, port: int) -> int:
    return 0


@dataclass
class Hooks:
    """What the layers above tell the supervisor, registered explicitly (never by attribute assignment)."""

    in_flight: Callable[[str], int] = _nothing_in_flight        # requests the router forwarded to NAME
    in_flight_at: Callable[[str, int], int] = _nothing_at      # ... to NAME's process on PORT (a surge's drain)
    sinks: Registry[EventSink] = field(default_factory=lambda: Registry("event sink", log))

    def register_router(self, in_flight: Callable[[str], int], in_flight_at: Callable[[str, int], int]) -> None:
        self.in_flight, self.in_flight_at = in_flight, in_flight_at

    def unregister_router(self) -> None:
        self.in_flight, self.in_flight_at = _nothing_in_flight, _nothing_at

    def register_events(self, sink: EventSink) -> None:
        self.sinks.add(sink)

    def unregister_events(self, sink: EventSink) -> None:
        self.sinks.remove(sink)

    def event(self, type_: str, **data: object) -> None:
        self.sinks.call(type_, **data)


class HealthPart(Protocol):
    """health.py, as the others call it."""

    def exit_unhandled(self, p: Proc) -> bool: ...
    def gone(self, p: Proc, how: str | None = None) -> None: ...
    def crashed(self, p: Proc, ending: Ending) -> None: ...


class RolloutPart(Protocol):
    """rollouts.py, as the others call it."""

    def drain_timeout(self, p: Proc) -> float: ...
    def drain_then_stop(self, p: Proc, reason: str, intent: StopIntent) -> None: ...
    def tick_drain(self, p: Proc, now: float) -> None: ...
    def ready_spec(self, p: Proc) -> None: ...
    def roll_back(self, p: Proc, entry: Entry, ending: Ending) -> bool: ...


class SurgePart(Protocol):
    """surge.py, as the others call it."""

    def failed(self, p: Proc, ending: Ending) -> None: ...
    def side_gone(self, side: Proc, reason: str) -> None: ...
    def save_side(self, side: Proc) -> None: ...
    def abort(self, p: Proc, reason: str) -> None: ...
    def settle_interrupted(self, p: Proc) -> None: ...


class Core(Protocol):
    """The supervisor as its collaborators see it."""

    procs: dict[str, Proc]
    settings: Reconciler
    clock: Callable[[], float]
    prober: Prober
    workers: Workers
    records: RecordWriter
    hooks: Hooks
    provenance: Callable[[str | None], Provenance]
    one_shot: bool
    proc_root: str
    health: HealthPart
    rollouts: RolloutPart
    surges: SurgePart

    def running(self, p: Proc) -> bool: ...
    def new_proc(self, rec: Record) -> Proc: ...
    def set_state(self, p: Proc, new: State, reason: str = "") -> None: ...
    def set_drain(self, p: Proc, deadline: float | None) -> None: ...
    def spawn(self, p: Proc, reason: str, count: bool = False) -> None: ...
    def start_when_free(self, p: Proc, reason: str, count: bool = False) -> None: ...
    def begin_stop(self, p: Proc, reason: str, intent: StopIntent) -> None: ...
    def tick_stopping(self, p: Proc, now: float) -> None: ...
    def after_stop(self, p: Proc, intent: StopIntent, reason: str) -> None: ...
    def prefix(self, p: Proc) -> str: ...
    def model_prefix(self, name: str) -> str: ...
    def log_path(self, p: Proc) -> Path: ...
    def probe_key(self, p: Proc) -> str: ...

