"""The supervisor's surge rollout (`Surges`, a collaborator: processes/core.py): a new spec starts beside the old process and
takes over only once it is Ready (README "Rollouts", `rollout.strategy: surge`).

  start    `surge(p, spec, want)`: the new spec (rendered on a spare port by the planner) is spawned as
           `p.successor` while the model's own process keeps serving; the router still sends it everything;
  swap     the successor is Ready: it becomes the model's process (record, port, probes; the router sends
           new requests to it at once), the old one becomes `p.retiring`;
  drain    the retiring process is stopped once the requests the router forwarded to its port are done
           (`in_flight_at(NAME, PORT)`), at most rollout.drain_timeout;
  fail     the successor exits or is not Ready within its ready_timeout: it is killed, the old process
           never stopped serving; the model stays Ready with rollout_error, the failed spec is not
           retried until the manifest changes again or `restart` (the plan's rule);
  newer    any other action for the model (a newer spec, a revert, a stop) ends the successor first;
  adopt    after a daemon restart (kill -9 included) a successor still starting is killed (rolled
           back: the next pass starts the surge again) and a retiring process is stopped, so one model
           never keeps two processes.

Both extra processes are `Proc`s of the same model with a `parent`; their records live inside the
model's record (`rec.surge`, `rec.retiring`: copies, `Record.snapshot`) so that the next daemon finds them.
"""

from __future__ import annotations

import logging
import signal
import time

from xgen_declare.placement.buffers import read_buffers
from xgen_declare.processes import pids
from xgen_declare.processes.core import Core
from xgen_declare.processes.history import Result
from xgen_declare.processes.lifecycle import Ending, Role, StopIntent
from xgen_declare.processes.logfiles import tail
from xgen_declare.processes.probes import probe_url
from xgen_declare.processes.spec import Rendered, Want
from xgen_declare.processes.state_store import Record
from xgen_declare.processes.supervised import Proc
from xgen_declare.states import State, transition

log = logging.getLogger("xgen_declare.processes.supervisor")

# the old process is not stopped sooner than this after the swap, even with nothing counted on its port:
# a request the router pointed at it just before the swap is counted (Tracker.bind) a moment later
RETIRE_GRACE = 1.0
CARRIED = ("held", "held_hash", "restarts", "manifest_error", "file", "last_good_spec_hash")  # model-level fields


class Surges:
    """Surge rollouts of the supervisor's models (`core`)."""

    def __init__(self, core: Core):
        self.core = core

    # ---- start -------------------------------------------------------------------------------------
    def surge(self, p: Proc, spec: Rendered, want: Want | None, reason: str) -> None:
        """Start `spec` beside the model's running process; it takes over once Ready."""
        c = self.core
        if p.successor is not None:
            if p.successor.rec.spec_hash == spec.spec_hash():
                return  # this surge is under way already
            self.abort(p, f"replaced by a newer spec ({reason})")
        if p.retiring is not None:  # one old process at a time: the earlier one goes now
            c.begin_stop(p.retiring, "a newer surge began", StopIntent.RETIRED)
        # spec_hash: the old one, so the spawn opens the history entry old -> new and says rollout_started
        s = c.new_proc(Record(name=p.rec.name, spec_hash=p.rec.spec_hash))
        s.parent, s.role, s.spec, s.want = p, Role.SURGE, spec, want
        p.successor = s
        log.info("%s: surge: starting spec %s on port %s beside pid %s (%s)", p.rec.name, spec.spec_hash(),
                 spec.port, p.rec.pid, reason)
        c.spawn(s, f"surge: {reason}")
        if s.state != State.STARTING:  # could not even be spawned
            self.failed(p, Ending(s.rec.last_error or "could not be started"))

    # ---- each tick ---------------------------------------------------------------------------------
    def tick(self, p: Proc, now: float) -> None:
        c = self.core
        s = p.successor
        if s is not None:
            if s.state == State.STOPPING:
                c.tick_stopping(s, now)
            elif not c.running(s):
                c.health.gone(s)  # the one exit path: the surge failed
            else:
                self._probe_successor(p, s, now)
        r = p.retiring
        if r is not None:
            if r.state == State.STOPPING:
                c.tick_stopping(r, now)
            elif not c.running(r):
                c.health.gone(r)  # the one exit path: only the model's own process remains
            elif now < r.next_probe_at:  # RETIRE_GRACE (a retiring process is never probed)
                pass
            elif not (busy := c.hooks.in_flight_at(p.rec.name, r.rec.port or 0)) or now >= (r.drain_deadline or 0):
                if busy:
                    log.warning("%s: drain_timeout passed with %d request(s) on the old process: stopping it",
                                p.rec.name, busy)
                r.drain_deadline = None
                c.begin_stop(r, "surge: replaced by the new process", StopIntent.RETIRED)

    def _probe_successor(self, p: Proc, s: Proc, now: float) -> None:
        c = self.core
        key = c.probe_key(s)
        res = c.prober.result(key)
        if res is not None:
            if res.ok:
                self._swap(p, s, res.detail)
                return
            s.last_probe = res.detail
        if now >= s.ready_deadline:
            detail = f": {s.last_probe}" if s.last_probe else ""
            self.failed(p, Ending(f"not ready after {s.rec.ready_timeout:g}s{detail}", tail(c.log_path(s), 10)))
            return
        if not c.prober.busy(key) and s.rec.port:
            c.prober.start(key, probe_url(s.rec.host, s.rec.port, s.rec.readiness_path))

    # ---- the swap, and the old process's end ---------------------------------------------------------
    def _swap(self, p: Proc, s: Proc, detail: str) -> None:
        """The successor is Ready: it becomes the model's process; the old one drains, then stops."""
        c = self.core
        old_rec, new_rec = p.rec, s.rec
        for name in CARRIED:
            setattr(new_rec, name, getattr(old_rec, name))
        new_rec.surge = None
        new_rec.restarts += 1  # a process replaced, as by recreate
        old = c.new_proc(old_rec)
        old.parent, old.role, old.popen, old.spec, old.want = p, Role.RETIRING, p.popen, p.spec, p.want
        old.drain_deadline = c.clock() + c.rollouts.drain_timeout(s)
        old.next_probe_at = c.clock() + RETIRE_GRACE
        c.prober.forget(p.rec.name)
        c.prober.forget(c.probe_key(s))
        p.rec, p.popen, p.spec, p.want, p.successor = new_rec, s.popen, s.spec, s.want, None
        p.killed, p.probe_failures, p.last_probe = False, 0, ""
        p.next_probe_at = c.clock() + c.settings.liveness_period
        p.backoff.healthy()
        p.retiring = old
        old_rec.state = transition(old_rec.name, old_rec.state_enum, State.READY, "surge: replaced, drains",
                                   process=f"{Role.RETIRING} process, pid {old_rec.pid}").value
        new_rec.ready_at, new_rec.last_error = time.time(), None
        new_rec.buffers_mib = read_buffers(c.log_path(p), new_rec.gpus)  # placement ledger
        c.rollouts.ready_spec(p)
        new_rec.retiring = old_rec.snapshot()
        log.info("%s: surge: pid %s on port %s is Ready and serves; pid %s drains", new_rec.name, new_rec.pid,
                 new_rec.port, old_rec.pid)
        c.set_state(p, State.READY, f"surge: new process Ready ({detail}); the old one drains")

    def side_gone(self, side: Proc, reason: str) -> None:
        """A successor or retiring process is gone: only the model's own process remains."""
        c = self.core
        p = side.parent
        assert p is not None
        if p.retiring is side:
            p.retiring, p.rec.retiring = None, None
            log.info("%s: surge: the old process is gone (%s)", p.rec.name, reason)
        elif p.successor is side:
            p.successor, p.rec.surge = None, None
        c.records.save(p.rec)

    def save_side(self, side: Proc) -> None:
        c = self.core
        p = side.parent
        assert p is not None
        if p.successor is side:
            p.rec.surge = side.rec.snapshot()
        elif p.retiring is side:
            p.rec.retiring = side.rec.snapshot()
        c.records.save(p.rec)

    # ---- failure and abort ----------------------------------------------------------------------------
    def failed(self, p: Proc, ending: Ending) -> None:
        c = self.core
        s = p.successor
        if s is None:
            return
        # the plan's hash of the spec (on the model's own port): the next pass sees it failed and keeps it out
        failed = (s.want.planned_hash if s.want is not None else None) or s.rec.spec_hash or \
            (s.spec.spec_hash() if s.spec else None)
        self._kill_side(s)
        c.records.rollout_end(s, Result.FAILED, ending.what)
        p.rec.failed_spec_hash = failed
        p.rec.rollout_error = f"the rollout of spec {failed} failed (the old process kept serving): {ending.text}"
        log.warning("%s: surge: the new spec %s failed (%s); pid %s kept serving", p.rec.name, failed,
                    ending.headline, p.rec.pid)
        c.hooks.event("rollout_failed", model=p.rec.name, from_hash=p.rec.spec_hash, to_hash=failed,
                      error=ending.headline)
        self.side_gone(s, ending.headline)

    def abort(self, p: Proc, reason: str) -> None:
        """End a surge under way without judging its spec (a newer spec, a revert, a stop)."""
        c = self.core
        s = p.successor
        if s is None:
            return
        log.info("%s: surge of spec %s ended: %s", p.rec.name, s.rec.spec_hash, reason)
        self._kill_side(s)
        c.records.rollout_end(s, Result.INTERRUPTED, reason)
        self.side_gone(s, reason)

    def _kill_side(self, s: Proc) -> None:
        """A successor never served: SIGKILL its group and its tagged escapees, and reap it."""
        c = self.core
        c.prober.forget(c.probe_key(s))
        if s.rec.pid and c.running(s):
            pids.signal_group(s.rec.pid, signal.SIGKILL)
        pids.sweep(c.prefix(s), signal.SIGKILL)
        if s.popen is not None:
            try:
                s.popen.wait(timeout=2)
            except Exception:  # reaped later; the group is killed either way
                pass
        s.rec.pid, s.popen = None, None

    # ---- adoption ------------------------------------------------------------------------------------
    def settle_interrupted(self, p: Proc) -> None:
        """At load: a successor (still starting when the last daemon died) is killed: the plan starts the
        surge again; a retiring process is stopped. Either way one process per model remains."""
        c = self.core
        for key, what in ((Role.SURGE.value, "the new process of an interrupted surge"),
                          (Role.RETIRING.value, "the old process of an interrupted surge")):
            side: Record | None = getattr(p.rec, key)  # None too when the record's copy could not be read
            if side is None:
                continue
            if pids.owned(side.pid, side.start_ticks, side.boot_id, side.marker, c.model_prefix(p.rec.name),
                          c.proc_root):
                log.warning("%s: %s (pid %s) is stopped after the daemon restart", p.rec.name, what, side.pid)
                pids.signal_group(side.pid, signal.SIGKILL)
            if side.marker:
                pids.sweep(side.marker, signal.SIGKILL)
            if side.rollout is not None:
                c.records.close_history(p.rec.name, side.rollout, Result.INTERRUPTED,
                                    "the daemon restarted during a surge")
            setattr(p.rec, key, None)
        rec = p.rec
        if pids.owned(rec.pid, rec.start_ticks, rec.boot_id, rec.marker, c.model_prefix(rec.name),
                       c.proc_root):
            # a process of this model that no record names (spawned while the state dir could not be
            # written, e.g. a successor) is an orphan beside the adopted one: never two live
            for orphan in pids.find_marked(c.model_prefix(rec.name)):
                if not pids.tag_of(orphan, "").startswith(rec.marker):
                    log.warning("%s: pid %s carries the model's tag but no record names it: killed", rec.name,
                                orphan.pid)
                    pids.kill_tree(orphan)
        c.records.save(p.rec)
