"""The supervisor's rollout side (a mixin of `Supervisor`, split out for size): drain before a stop,
fields updated in place, the result of a rollout (history, events) and the rollback of a new spec
that never became Ready. See supervisor.py for the process side and README "Rollouts".

  drain     `_drain_then_stop`: the drain flag first (`draining()`: the router sends nothing new,
            new requests wait in its queue), then the stop waits until `in_flight(NAME)` is 0, at
            most the model's rollout.drain_timeout (`_tick_drain`, each tick);
  in place  `update_in_place`: the record takes fields only xgen-declare reads (rollout.py);
  results   `_ready_spec` (Ready: the last good spec), `_rollout_end` (history entry closed and
            written, or kept for flush()), `_roll_back` (a failed new spec: the last good one again).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from xgen_declare.processes import history
from xgen_declare.errors import StateNameError, StateWriteError
from xgen_declare.states import State

if TYPE_CHECKING:
    from xgen_declare.processes.proc import Proc

log = logging.getLogger("xgen_declare.processes.supervisor")

DEFAULT_DRAIN = 60.0  # rollout.drain_timeout when neither the manifest nor the record has one


class RolloutMixin:
    # attributes of Supervisor used here (its methods too: running, _begin_stop, _start)
    procs: dict[str, Any]
    store: Any
    clock: Callable[[], float]
    in_flight: Callable[[str], int]
    on_event: Callable[..., None]
    one_shot: bool
    provenance: Callable[[str | None], Any]
    _history_unsaved: dict[str, list[dict]]

    def update_in_place(self, p: "Proc", reason: str) -> None:
        """Fields only xgen-declare reads (rollout.IN_PLACE_FIELDS): the record takes them, the process
        runs on untouched; the history says so."""
        rec, spec = p.rec, p.spec
        if p.want is not None:
            rec.settings = dict(p.want.settings)
        if spec is not None:
            rec.stop_grace, rec.ready_timeout, rec.file = spec.stop_grace, spec.ready_timeout, spec.file
        prov = self.provenance(rec.file)
        rec.provenance = prov.to_json()
        log.info("%s: %s (process %s untouched)", rec.name, reason, rec.pid)
        self._close_history(rec.name, history.open_entry(rec.spec_hash, rec.spec_hash or "", prov),
                            history.UPDATED_IN_PLACE, reason)

    # ---- drain, then stop -----------------------------------------------------------------------
    def draining(self, name: str) -> bool:
        """The router sends NAME nothing new (its new requests wait): it is drained before a stop."""
        p = self.procs.get(name)
        return p is not None and p.drain_deadline is not None

    def _drain_timeout(self, p: "Proc") -> float:
        settings = p.want.settings if p.want is not None and p.want.settings else (p.rec.settings or {})
        value = (settings.get("rollout") or {}).get("drain_timeout")
        return float(value) if isinstance(value, (int, float)) else DEFAULT_DRAIN

    def _drain_then_stop(self, p: "Proc", reason: str, after: str) -> None:
        """Stop once the router's requests in flight are done (at most drain_timeout); a model that
        is not serving (starting, stopping) is stopped at once."""
        if p.state not in (State.READY, State.UNHEALTHY) or not self.running(p):
            self._begin_stop(p, reason, after)
            return
        if p.drain_deadline is not None:  # draining already: a removal outranks the rest
            if p.drain_after != "forget" or after == "forget":
                p.drain_after, p.drain_reason = after, reason
            return
        timeout = self._drain_timeout(p)
        # set first, then count: a request counted after this sees the flag and waits (router)
        p.drain_deadline, p.drain_reason, p.drain_after = self.clock() + timeout, reason, after
        busy = self.in_flight(p.rec.name)
        if busy and timeout > 0:
            log.info("%s: draining %d request(s) in flight (up to %gs) before the stop: %s", p.rec.name, busy,
                     timeout, reason)
        else:
            self._tick_drain(p, self.clock())

    def _tick_drain(self, p: "Proc", now: float) -> None:
        busy = self.in_flight(p.rec.name)
        if busy and now < (p.drain_deadline or 0):
            return
        if busy:
            log.warning("%s: drain_timeout passed with %d request(s) still in flight: stopping", p.rec.name, busy)
        self._begin_stop(p, p.drain_reason, p.drain_after)

    # ---- rollout results and rollback ----------------------------------------------------------
    def _ready_spec(self, p: "Proc") -> None:
        """The process became Ready: its spec is the last good one; a rollout ends here."""
        rec = p.rec
        rolled_back, p.rolling_back = p.rolling_back, False
        if rec.rollout is not None:
            entry = rec.rollout
            self._rollout_end(p, history.ROLLED_BACK if rolled_back else history.SUCCEEDED)
            if rolled_back:
                self.on_event("rolled_back", model=rec.name, to_hash=rec.spec_hash, failed_hash=rec.failed_spec_hash)
            elif entry.get("from") is not None:
                self.on_event("rollout_succeeded", model=rec.name, from_hash=entry.get("from"),
                              to_hash=rec.spec_hash)
        if not rolled_back:
            rec.failed_spec_hash = rec.rollout_error = None
        if p.spec is not None and p.spec.spec_hash() == rec.spec_hash:
            p.last_good = (p.spec, p.want)
        rec.last_good_spec_hash = rec.spec_hash

    def _roll_back(self, p: "Proc", entry: dict, msg: str) -> bool:
        """A new spec failed before it was Ready: start the last good spec again (recreate). Not in
        one-shot mode (apply reports the failure), not for a failing rollback itself."""
        good = p.last_good
        failed = entry.get("to")
        if self.one_shot or p.rolling_back or good is None or entry.get("from") is None:
            return False
        if good[0].spec_hash() != entry.get("from") or failed == entry.get("from"):
            return False
        rec = p.rec
        rec.failed_spec_hash = failed
        rec.rollout_error = f"the rollout of spec {failed} failed: {msg}"
        rec.last_error = rec.rollout_error
        self.on_event("rollout_failed", model=rec.name, from_hash=entry.get("from"), to_hash=failed,
                      error=history.close_entry(entry, history.FAILED, msg)["detail"])
        log.warning("%s: the rollout of spec %s failed (%s): rolling back to %s", rec.name, failed,
                    history.close_entry(entry, history.FAILED, msg)["detail"], entry.get("from"))
        p.spec, p.want = good
        p.rolling_back = True
        self._start(p, f"rolling back to the last good spec {entry.get('from')}", count=True)
        return True

    # ---- rollout history -----------------------------------------------------------------------
    def _rollout_end(self, p: "Proc", result: str, detail: str | None = None) -> dict | None:
        """Close the open history entry of `p` (if any) with `result`; the closed entry, or None."""
        entry = p.rec.rollout
        if entry is None:
            return None
        p.rec.rollout = None
        return self._close_history(p.rec.name, entry, result, detail)

    def _close_history(self, name: str, entry: dict, result: str, detail: str | None = None) -> dict:
        """Close a history entry of model `name`; written at once, or by flush()."""
        closed = history.close_entry(entry, result, detail)
        self._history_unsaved.setdefault(name, []).append(closed)
        self._write_history(name)
        return closed

    def _write_history(self, name: str) -> None:
        pending = self._history_unsaved.get(name, [])
        while pending:
            try:
                self.store.append_history(name, pending[0])
            except (StateWriteError, StateNameError) as exc:
                log.debug("%s: history: %s", name, exc)
                return
            pending.pop(0)
        self._history_unsaved.pop(name, None)
