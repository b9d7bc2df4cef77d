"""The supervisor's health side (a mixin of `Supervisor`): readiness and liveness probes, a process
that exits, and the crash back-off.

  ready     a starting model is probed every READY_POLL until its readiness path answers (Ready, the
            measured buffers are read from its log for the ledger) or `ready_timeout` passes (a crash);
  liveness  a Ready model is probed every `liveness_period`; a failure makes it Unhealthy, and
            `liveness_threshold` failures in a row stop it as a crash;
  crash     the group and escapees are killed; a new spec that never became Ready is rolled back to the
            last good one (rollouts.py), anything else waits in CrashLoopBackOff (doubling delay, keyed
            by the spec that failed; one-shot verbs record Failed instead).
"""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING, Any, Callable

from xgen_declare.placement.buffers import read_buffers
from xgen_declare.processes import history, procs
from xgen_declare.processes.logfiles import tail
from xgen_declare.processes.probes import probe_url
from xgen_declare.states import State

if TYPE_CHECKING:
    from xgen_declare.processes.proc import Proc

log = logging.getLogger("xgen_declare.processes.supervisor")

READY_POLL = 0.05  # readiness probes of a starting model (bench/cold_start.py: 0.2 s cost ~100 ms a cold start)


class HealthMixin:
    # attributes and methods of Supervisor used here
    store: Any
    settings: Any
    prober: Any
    workers: Any
    one_shot: bool
    clock: Callable[[], float]

    _set: Callable[..., Any]
    _log: Callable[..., Any]
    _begin_stop: Callable[..., Any]
    _prefix: Callable[..., Any]
    _rollout_end: Callable[..., Any]
    _roll_back: Callable[..., Any]
    _ready_spec: Callable[..., Any]

    def _crashed(self, p: "Proc", msg: str) -> None:
        p.rec.pid, p.popen = None, None
        entry = p.rec.rollout
        self._rollout_end(p, history.FAILED, msg)
        if entry is not None and self._roll_back(p, entry, msg):
            return
        self.workers.stop(p.rec.name)
        if self.one_shot:
            p.rec.last_error = msg
            self._set(p, State.FAILED, msg.splitlines()[0])
            return
        # the run that just ended counts towards the reset (so no unhealthy() here); the sequence
        # belongs to the spec that failed: a new spec starts again at backoff_base
        delay = p.backoff.next_delay(p.spec.spec_hash() if p.spec is not None else p.rec.spec_hash)
        p.next_start_at = self.clock() + delay
        p.rec.last_error = f"{msg} (restarting in {delay:g}s)"
        self._set(p, State.CRASH_LOOP_BACK_OFF, f"{msg.splitlines()[0]}; retry in {delay:g}s")

    def _exited(self, p: "Proc") -> None:
        code = p.popen.returncode if p.popen is not None else None
        how = ("exited (adopted process: exit code unknown)" if code is None else
               f"killed by signal {-code}" if code < 0 else f"exited with code {code}")
        when = " during start" if p.state == State.STARTING else ""
        # leftovers (group members, escaped descendants) must not keep the port; they carry the owner
        # tag. The leader's pid is not signalled as a group id: it is reaped and may be reused.
        procs.sweep(self._prefix(p), signal.SIGKILL)
        lines = tail(self._log(p), 10)
        msg = f"{how}{when}" + (f"; last log lines:\n{lines}" if lines else "")
        self.prober.forget(p.rec.name)
        self._crashed(p, msg)

    def _fail_running(self, p: "Proc", msg: str) -> None:
        """Stop a process that failed a probe rule; it then counts as a crash."""
        p.crash_msg = msg
        self._begin_stop(p, msg, "crash")

    def _tick_probe(self, p: "Proc", now: float) -> None:
        name, rec, st = p.rec.name, p.rec, p.state
        res = self.prober.result(name)
        if res is not None:
            if st == State.STARTING:
                if res.ok:
                    rec.ready_at, rec.last_error = time.time(), None
                    rec.buffers_mib = read_buffers(self._log(p), rec.gpus)  # placement ledger
                    p.backoff.healthy()
                    p.next_probe_at = now + self.settings.liveness_period
                    self._ready_spec(p)
                    self._set(p, State.READY, res.detail)
                    return
                p.last_probe = res.detail
                p.next_probe_at = now + READY_POLL
            else:
                p.next_probe_at = now + self.settings.liveness_period
                if res.ok:
                    p.probe_failures = 0
                    if st == State.UNHEALTHY:
                        rec.last_error = None
                        self._set(p, State.READY, res.detail)
                else:
                    p.probe_failures += 1
                    rec.last_error = f"liveness probe failed ({p.probe_failures}/" \
                                     f"{self.settings.liveness_threshold}): {res.detail}"
                    if p.probe_failures >= self.settings.liveness_threshold:
                        self._fail_running(p, f"liveness probe failed {p.probe_failures} times: {res.detail}")
                        return
                    self._set(p, State.UNHEALTHY, res.detail)
        if st == State.STARTING and now >= p.ready_deadline:
            detail = f": {p.last_probe}" if p.last_probe else ""
            lines = tail(self._log(p), 10)
            self._fail_running(p, f"not ready after {rec.ready_timeout:g}s{detail}"
                               + (f"; last log lines:\n{lines}" if lines else ""))
            return
        if now >= p.next_probe_at and not self.prober.busy(name) and rec.port:
            self.prober.start(name, probe_url(rec.host, rec.port, rec.readiness_path))
