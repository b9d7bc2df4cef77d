"""The supervisor's rollout side (`Rollouts`, a collaborator: processes/core.py): drain before a stop,
fields updated in place, the result of a rollout (history, events) and the rollback of a new spec
that never became Ready. See supervisor.py for the process side and README "Rollouts".

  drain     `drain_then_stop`: the drain flag first (`draining()`: the router sends nothing new,
            new requests wait in its queue), then the stop waits until `in_flight(NAME)` is 0, at
            most the model's rollout.drain_timeout (`tick_drain`, each tick);
  in place  `update_in_place`: the record takes fields only xgen-declare reads (rollout.py);
  results   `ready_spec` (Ready: the last good spec), `roll_back` (a failed new spec: the last good one
            again); history entries are closed and written by records.py.
"""

from __future__ import annotations

import logging

from xgen_declare.processes import history
from xgen_declare.processes.core import Core
from xgen_declare.processes.history import Entry, Result
from xgen_declare.processes.lifecycle import Ending, StopIntent
from xgen_declare.processes.settings import DEFAULT_DRAIN
from xgen_declare.processes.supervised import Proc
from xgen_declare.states import State

log = logging.getLogger("xgen_declare.processes.supervisor")



class Rollouts:
    """Drain, in-place updates, rollout results and rollback, for the supervisor (`core`)."""

    def __init__(self, core: Core):
        self.core = core

    def update_in_place(self, p: Proc, reason: str) -> None:
        """Fields only xgen-declare reads (rollout.IN_PLACE_FIELDS): the record takes them, the process
        runs on untouched; the history says so."""
        c = self.core
        rec, spec = p.rec, p.spec
        if p.want is not None and p.want.settings is not None:
            rec.settings = p.want.settings
        if spec is not None:
            rec.stop_grace, rec.ready_timeout, rec.file = spec.stop_grace, spec.ready_timeout, spec.file
        prov = c.provenance(rec.file)
        rec.provenance = prov
        log.info("%s: %s (process %s untouched)", rec.name, reason, rec.pid)
        c.records.close_history(rec.name, history.open_entry(rec.spec_hash, rec.spec_hash or "", prov),
                                Result.UPDATED_IN_PLACE, reason)

    # ---- drain, then stop -----------------------------------------------------------------------
    def draining(self, name: str) -> bool:
        """The router sends NAME nothing new (its new requests wait): it is drained before a stop."""
        c = self.core
        p = c.procs.get(name)
        return p is not None and p.drain_deadline is not None

    def drain_timeout(self, p: Proc) -> float:
        settings = p.want.settings if p.want is not None and p.want.settings is not None else p.rec.settings
        return settings.drain_timeout if settings is not None else DEFAULT_DRAIN

    def drain_then_stop(self, p: Proc, reason: str, after: StopIntent) -> None:
        """Stop once the router's requests in flight are done (at most drain_timeout); a model that
        is not serving (starting, stopping) is stopped at once."""
        c = self.core
        if p.state not in (State.READY, State.UNHEALTHY) or not c.running(p):
            c.begin_stop(p, reason, after)
            return
        if p.drain_deadline is not None:  # draining already: a removal outranks the rest
            p.drain_after, p.drain_reason = p.drain_after.then(after), reason
            return
        timeout = self.drain_timeout(p)
        # set first, then count: a request counted after this sees the flag and waits (router)
        p.drain_reason, p.drain_after = reason, after
        c.set_drain(p, c.clock() + timeout)
        busy = c.hooks.in_flight(p.rec.name)
        if busy and timeout > 0:
            log.info("%s: draining %d request(s) in flight (up to %gs) before the stop: %s", p.rec.name, busy,
                     timeout, reason)
        else:
            self.tick_drain(p, c.clock())

    def tick_drain(self, p: Proc, now: float) -> None:
        c = self.core
        busy = c.hooks.in_flight(p.rec.name)
        if busy and now < (p.drain_deadline or 0):
            return
        if busy:
            log.warning("%s: drain_timeout passed with %d request(s) still in flight: stopping", p.rec.name, busy)
        c.begin_stop(p, p.drain_reason, p.drain_after)

    # ---- rollout results and rollback ----------------------------------------------------------
    def ready_spec(self, p: Proc) -> None:
        """The process became Ready: its spec is the last good one; a rollout ends here."""
        c = self.core
        rec = p.rec
        rolled_back, p.rolling_back = p.rolling_back, False
        if rec.rollout is not None:
            entry = rec.rollout
            c.records.rollout_end(p, Result.ROLLED_BACK if rolled_back else Result.SUCCEEDED)
            if rolled_back:
                c.hooks.event("rolled_back", model=rec.name, to_hash=rec.spec_hash, failed_hash=rec.failed_spec_hash)
            elif entry.from_hash is not None:
                c.hooks.event("rollout_succeeded", model=rec.name, from_hash=entry.from_hash,
                              to_hash=rec.spec_hash)
        if not rolled_back:
            rec.failed_spec_hash = rec.rollout_error = None
        if p.spec is not None and p.spec.spec_hash() == rec.spec_hash:
            p.last_good = (p.spec, p.want)
        rec.last_good_spec_hash = rec.spec_hash

    def roll_back(self, p: Proc, entry: Entry, ending: Ending) -> bool:
        """A new spec failed before it was Ready: start the last good spec again (recreate). Not in
        one-shot mode (apply reports the failure), not for a failing rollback itself."""
        c = self.core
        good = p.last_good
        failed = entry.to_hash
        if c.one_shot or p.rolling_back or good is None or entry.from_hash is None:
            return False
        if good[0].spec_hash() != entry.from_hash or failed == entry.from_hash:
            return False
        rec = p.rec
        rec.failed_spec_hash = failed
        rec.rollout_error = f"the rollout of spec {failed} failed: {ending.text}"
        rec.last_error = rec.rollout_error
        c.hooks.event("rollout_failed", model=rec.name, from_hash=entry.from_hash, to_hash=failed,
                      error=ending.headline)
        log.warning("%s: the rollout of spec %s failed (%s): rolling back to %s", rec.name, failed,
                    ending.headline, entry.from_hash)
        p.spec, p.want = good
        p.rolling_back = True
        c.start_when_free(p, f"rolling back to the last good spec {entry.from_hash}", count=True)
        return True
