"""The supervisor's health side (`Health`, a collaborator of the supervisor: processes/core.py): readiness
and liveness probes, a process that exits, and the crash back-off.

  ready     a starting model is probed every READY_POLL until its readiness path answers (Ready, the
            measured buffers are read from its log for the ledger) or `ready_timeout` passes (a crash);
  liveness  a Ready model is probed every `liveness_period`; a failure makes it Unhealthy, and
            `liveness_threshold` failures in a row stop it as a crash;
  exit      `gone` is THE exit path of a process that ended without being stopped, whoever notices it
            first: its own tick (`poll()`), the reconcile pass (`settle_exits()`, run by the executor
            before it plans), a start the plan asks for, the next daemon (`load()`), and for a surge's
            two processes `_tick_surge`. It kills what is left of the process group (helpers that
            cleared their tag) and sweeps the spawn's tagged escapees, reaps, reads the log tail, and
            ends in the crash path (or in what a drain was for, or in the surge's failure);
  crash     a new spec that never became Ready is rolled back to the last good one (rollouts.py),
            anything else waits in CrashLoopBackOff (backoff.py: the first crash after a Ready run
            restarts at once, then a doubling delay keyed by the spec that failed; one-shot verbs
            record Failed instead).
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
from xgen_declare.processes.supervised import Proc
from xgen_declare.states import State

LIVE = (State.STARTING, State.READY, State.UNHEALTHY)  # states whose process should run (not being stopped)

log = logging.getLogger("xgen_declare.processes.supervisor")

READY_POLL = 0.05  # readiness probes of a starting model (bench/cold_start.py: 0.2 s cost ~100 ms a cold start)


class Health:
    """Probes, the one exit path and the crash back-off, for the supervisor (`core`)."""

    def __init__(self, core: Core):
        self.core = core

    def crashed(self, p: Proc, ending: Ending) -> None:
        c = self.core
        p.rec.pid, p.popen = None, None
        entry = p.rec.rollout
        c.records.rollout_end(p, Result.FAILED, ending.what)
        if entry is not None and c.rollouts.roll_back(p, entry, ending):
            return
        c.workers.stop(p.rec.name)
        if c.one_shot:
            p.rec.last_error = ending.text
            c.set_state(p, State.FAILED, ending.headline)
            return
        # the run that just ended counts towards the reset (so no unhealthy() here); the sequence
        # belongs to the spec that failed: a new spec starts again at backoff_base
        delay = p.backoff.next_delay(p.spec.spec_hash() if p.spec is not None else p.rec.spec_hash)
        p.next_start_at = c.clock() + delay  # the tick starts it (at once: in the same tick)
        when = f"in {delay:g}s" if delay else "at once (the first crash after a Ready run)"
        p.rec.last_error = f"{ending.text} (restarting {when})"
        c.set_state(p, State.CRASH_LOOP_BACK_OFF, f"{ending.headline}; " +
                    (f"retry in {delay:g}s" if delay else "restarting at once (the first crash after a Ready run)"))

    # ---- a process that is gone: one exit path, whoever notices it first ---------------------------
    def exit_unhandled(self, p: Proc) -> bool:
        """A process of `p` that should run is gone and `gone` has not handled its end yet."""
        c = self.core
        return p.state in LIVE and (p.popen is not None or bool(p.rec.pid)) and not c.running(p)

    def settle_exits(self) -> list[str]:
        """Every process found gone ends through `gone` now. The executor calls this before it plans: a
        pass that sees an exit before the tick does must not plan a start that skips the crash path (no
        group kill, no escapee sweep, no back-off). Returns the models whose process was found gone."""
        c = self.core
        found = []
        for p in list(c.procs.values()):
            for q in (p, p.successor, p.retiring):
                if q is not None and self.exit_unhandled(q):
                    found.append(p.rec.name)
                    self.gone(q)
        return found

    def gone(self, p: Proc, how: str | None = None) -> None:
        """THE end of a process that exited (or was killed) without being stopped by us."""
        c = self.core
        rec = p.rec
        # leftovers must not keep the port or GPU memory: what is left of the group (the leader's pid names
        # it until the last member is gone, so it is ours while it has members) and the spawn's escapees
        pids.kill_left_group(rec.pid, rec.start_ticks, rec.boot_id, c.proc_root)
        pids.sweep(c.prefix(p), signal.SIGKILL)
        code = p.popen.poll() if p.popen is not None else None  # reaped here at the latest
        if how is None:
            how = ("exited (adopted process: exit code unknown)" if code is None else
                   f"killed by signal {-code}" if code < 0 else f"exited with code {code}")
        c.prober.forget(c.probe_key(p))
        log.info("%s: pid %s %s", rec.name, rec.pid, how)
        if p.parent is not None and p.role is Role.SURGE:  # the new process of a surge never served
            c.surges.failed(p.parent, Ending(f"{how} during start", tail(c.log_path(p), 10)))
            return
        if p.role is Role.RETIRING:  # the old process of a surge: only the model's own one remains
            c.surges.side_gone(p, f"{how} while draining")
            return
        if p.drain_deadline is not None:  # it went away while draining: what the stop was for follows
            c.after_stop(p, p.drain_after, f"exited while draining: {p.drain_reason}")
            c.set_drain(p, None)  # only now: the router must not pick the dead process meanwhile
            return
        when = " during start" if p.state == State.STARTING else ""
        self.crashed(p, Ending(f"{how}{when}", tail(c.log_path(p), 10)))

    def fail_running(self, p: Proc, ending: Ending) -> None:
        """Stop a process that failed a probe rule; it then counts as a crash."""
        c = self.core
        p.crash = ending
        c.begin_stop(p, ending.headline, StopIntent.CRASH)

    def tick_probe(self, p: Proc, now: float) -> None:
        c = self.core
        name, rec, st = p.rec.name, p.rec, p.state
        res = c.prober.result(name)
        if res is not None:
            if st == State.STARTING:
                if res.ok:
                    rec.ready_at, rec.last_error = time.time(), None
                    rec.buffers_mib = read_buffers(c.log_path(p), rec.gpus)  # placement ledger
                    p.backoff.healthy()
                    p.next_probe_at = now + c.settings.liveness_period
                    c.rollouts.ready_spec(p)
                    c.set_state(p, State.READY, res.detail)
                    return
                p.last_probe = res.detail
                p.next_probe_at = now + READY_POLL
            else:
                p.next_probe_at = now + c.settings.liveness_period
                if res.ok:
                    p.probe_failures = 0
                    if st == State.UNHEALTHY:
                        rec.last_error = None
                        c.set_state(p, State.READY, res.detail)
                else:
                    p.probe_failures += 1
                    rec.last_error = f"liveness probe failed ({p.probe_failures}/" \
                                     f"{c.settings.liveness_threshold}): {res.detail}"
                    if p.probe_failures >= c.settings.liveness_threshold:
                        self.fail_running(p, Ending(f"liveness probe failed {p.probe_failures} times: {res.detail}"))
                        return
                    c.set_state(p, State.UNHEALTHY, res.detail)
        if st == State.STARTING and now >= p.ready_deadline:
            detail = f": {p.last_probe}" if p.last_probe else ""
            self.fail_running(p, Ending(f"not ready after {rec.ready_timeout:g}s{detail}", tail(c.log_path(p), 10)))
            return
        if now >= p.next_probe_at and not c.prober.busy(name) and rec.port:
            c.prober.start(name, probe_url(rec.host, rec.port, rec.readiness_path))
