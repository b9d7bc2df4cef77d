"""The supervisor keeps processes alive: spawn, stop, and the state machine driven by `tick()`.

It carries out what the executor (reconciler/apply.py) asks, one model at a time, and never plans.
It is driven by `tick()` (no blocking waits), in the daemon (`run`) and, in one-shot mode, in
`apply`/`down`/`restart` when no daemon runs. Every state change goes through `states.transition`
and is written to the model's record at once. Split by job: records.py (adoption, writes that may
fail), health.py (probes, crashes, back-off), rollouts.py (drain, in-place updates, rollback).

Memory is the truth, the record its copy: a record that cannot be written (state dir read-only or
full) never stops supervision. The action is taken first (a stop is signalled, a crash retried), the
failure is kept in `store.write_failures` (path + errno, for the log, `status` and /metrics) and the
record is written again every FLUSH_PERIOD until it succeeds.

  spawn   argv as a list (never a shell), its own session/process group (start_new_session=True),
          stdout+stderr appended to STATE_DIR/logs/NAME.log, XGEN_DECLARE_OWNER in the environment,
          secrets read from their files into the environment at this moment only;
  drain   before a stop (rollout, idle stop, eviction, `down`, removal, --stop-on-exit): the router
          sends the model nothing new (`draining()`; new requests wait in its queue) and the stop
          waits until `in_flight(NAME)` (requests forwarded by the router) is 0, at most the model's
          rollout.drain_timeout; a crash or failed probe is not drained;
  stop    SIGTERM to the group (+ tagged escapees), wait stop_grace, SIGKILL the group and the
          escapees, reap; the next process of a restart starts only once the old one is gone;
  exit    a process that is gone ends through one path whoever notices it first (its tick, the reconcile
          pass, a planned start, the next daemon; health.py `_gone`): the rest of its group and its
          escapees are killed, then the crash path;
  crash   the model waits in CrashLoopBackOff: the first crash after a Ready run restarts at once,
          later ones wait a doubling delay (backoff.py);
  adopt   a record whose pid still has the recorded start ticks + boot id is taken over as is.

Each spawn records its provenance (manifest file, sha256, git commit, dirty; provenance.py); a spawn
of a new spec hash opens a rollout history entry, closed when it is Ready or fails (history.py).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from xgen_declare.config import Reconciler
from xgen_declare.processes import history, procs
from xgen_declare.processes.backoff import Backoff
from xgen_declare.processes.logfiles import open_log, rotate_if_needed
from xgen_declare.processes.probes import Prober
from xgen_declare.processes.proc import Proc, SecretFileError, child_env
from xgen_declare.processes.provenance import Provenance, of_file
from xgen_declare.processes.health import HealthMixin
from xgen_declare.processes.records import FLUSH_PERIOD, RecordsMixin
from xgen_declare.processes.rollouts import RolloutMixin
from xgen_declare.processes.surge import SurgeMixin
from xgen_declare.processes.rpc_workers import Workers
from xgen_declare.processes.spec import Rendered, Seen, Want
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.states import State, transition

log = logging.getLogger("xgen_declare.processes.supervisor")

ESCAPEE_POLL = 0.3




class Supervisor(SurgeMixin, RolloutMixin, HealthMixin, RecordsMixin):
    def __init__(self, store: StateStore, settings: Reconciler | None = None, *,
                 clock: Callable[[], float] = time.monotonic, popen: Callable = subprocess.Popen,
                 prober: Prober | None = None, one_shot: bool = False, proc_root: str = procs.PROC,
                 provenance: Callable[[str | None], Provenance] = of_file):
        self.store = store
        self.settings = settings or Reconciler()
        self.clock = clock
        self.popen = popen
        self.prober = prober or Prober(self.settings.probe_timeout)
        self.one_shot = one_shot
        self.proc_root = proc_root
        self.provenance = provenance
        self._history_unsaved: dict[str, list[dict]] = {}  # closed rollout entries not yet written
        self.owner = store.owner_id()
        self.procs: dict[str, Proc] = {}
        self._next_rotation = 0.0
        self.unsaved: set[str] = set()     # records whose last write failed (memory is ahead of disk)
        self._undeleted: set[str] = set()  # forgotten models whose record could not be removed
        self._next_flush = 0.0
        self.workers = Workers(self.owner, self.store.log_path, popen)  # llama.cpp RPC groups
        # requests the router has forwarded to NAME and not finished (the router sets it; none without one)
        self.in_flight: Callable[[str], int] = lambda name: 0
        # requests the router has forwarded to NAME's process on PORT and not finished (a surge drains the
        # old process by these); the router sets it
        self.in_flight_at: Callable[[str, int], int] = lambda name, port: 0
        # rollout events (rollout_started/succeeded/failed, rolled_back): fn(type, **data); the API sets it
        self.on_event: Callable[..., None] = lambda type_, **data: None

    # ---- records and adoption ------------------------------------------------------------------
    def _new_proc(self, rec: Record) -> Proc:
        s = self.settings
        return Proc(rec, Backoff(s.backoff_base, s.backoff_max, s.backoff_reset, self.clock))

    def _set(self, p: Proc, new: State, reason: str = "") -> None:
        r = p.rec
        if p.parent is not None:  # a surge's second process: the model's own state does not change
            log.info("%s (%s process, pid %s): %s -> %s%s", r.name, p.role, r.pid, p.state.value, new.value,
                     f": {reason}" if reason else "")
            r.state = new.value
            self._save_side(p)
            return
        detail = {"restarts": r.restarts, "pid": r.pid, "port": r.port, "last_error": r.last_error}
        p.rec.state = transition(r.name, p.state, new, reason, detail).value
        self.save(p.rec)

    def running(self, p: Proc) -> bool:
        if p.popen is not None:
            return p.popen.poll() is None
        return procs.matches(p.rec.pid, p.rec.start_ticks, p.rec.boot_id, self.proc_root)

    def observed(self) -> dict[str, Seen]:
        out = {}
        for name, p in self.procs.items():
            running = self.running(p) or (p.state == State.STOPPING)
            out[name] = Seen.of(p.rec, running, p.successor.rec if p.successor else None)
        return out

    # ---- what the executor (reconciler/apply.py) calls, one action at a time ------------------
    def proc(self, name: str, create: bool = True) -> Proc | None:
        """The model's Proc; a new one (and record) when `create`."""
        p = self.procs.get(name)
        if p is None and create:
            p = self.procs[name] = self._new_proc(Record(name=name))
            self._undeleted.discard(name)
        return p

    def take_spec(self, p: Proc, spec: Rendered, want: Want | None) -> None:
        """What the next start of `p` runs, unless it is the spec whose rollout failed (rolled back: the
        last good spec stays); a new spec clears the rollback."""
        failed = p.rec.failed_spec_hash
        if failed and want is not None and want.spec_hash != failed:
            p.rec.failed_spec_hash = p.rec.rollout_error = None  # the manifest moved on from the failed spec
        if not (failed and want is not None and want.spec_hash == failed):
            p.spec, p.want = spec, want
            p.rec.file = spec.file

    def retry_failed(self, p: Proc) -> None:
        """`restart`: the spec whose rollout failed may be tried again."""
        p.rec.failed_spec_hash = p.rec.rollout_error = None
        p.rolling_back = False

    def hold(self, p: Proc) -> None:
        """`down`: kept stopped until `up`, `restart` or a new spec."""
        p.rec.held, p.rec.held_hash = True, p.rec.spec_hash if p.spec is None else p.spec.spec_hash()

    def release_hold(self, p: Proc) -> None:
        p.rec.held, p.rec.held_hash = False, None

    def cancel_drain(self, p: Proc, reason: str) -> None:
        if p.drain_deadline is not None:
            log.info("%s: wanted running again: drain cancelled (%s)", p.rec.name, reason)
            p.drain_deadline = None

    def start(self, p: Proc, reason: str, count: bool = False) -> None:
        """Start unless it runs (or a start is queued); `count`: it replaces a process that went away.
        A process found gone ends through the one exit path first, and then its back-off decides when
        it starts again (the tick), never this start."""
        if self.exit_unhandled(p):
            self._gone(p)
        if p.state == State.CRASH_LOOP_BACK_OFF and p.next_start_at is not None and count:
            return
        if not (p.queued or self.running(p)):
            self._start(p, reason, count=count)

    def keep(self, p: Proc, reason: str, settle_stopped: bool = False) -> None:
        """Nothing to do, but a model that does not run shows why: Invalid, or Stopped (held, disabled)."""
        if p.want is not None and p.rec.settings is None and self.running(p):
            p.rec.settings = dict(p.want.settings)  # a record from before settings were recorded
        if self.running(p) or p.state in (State.STOPPING, State.CRASH_LOOP_BACK_OFF) or p.queued:
            return
        if p.rec.manifest_error:
            self._set(p, State.INVALID, reason)
        elif p.rec.held or settle_stopped:
            self._set(p, State.STOPPED, reason)

    def idle(self, p: Proc, reason: str) -> None:
        """An on-demand model nobody wants now: no retries, shown as Idle once nothing runs."""
        if self.running(p) or p.state == State.STOPPING:
            return
        p.next_start_at, p.queued = None, False
        self._set(p, State.IDLE, reason)

    def block(self, p: Proc, reason: str) -> None:
        p.rec.last_error = reason
        if not self.running(p) and p.state != State.STOPPING:
            p.next_start_at, p.queued = None, False
            self._set(p, State.BLOCKED, reason)

    def restart(self, name: str, reason: str) -> None:
        p = self.procs[name]
        if self.exit_unhandled(p):
            self._gone(p)  # its leftovers first; the restart asked for goes on at once
        p.next_start_at, p.rolling_back = None, False
        if self.running(p) or p.state == State.STOPPING:
            self._drain_then_stop(p, reason, "start")
        elif not p.queued:
            self._start(p, reason)

    def stop(self, name: str, reason: str, *, forget: bool = False, hold: bool = False, idle: bool = False) -> None:
        """`idle`: an on-demand model stopped for want of requests; it ends Idle instead of Stopped."""
        p = self.procs.get(name)
        if p is None:
            return
        if self.exit_unhandled(p):
            self._gone(p)  # a stop of a process found gone still kills what is left of it
        self.abort_surge(p, f"stopped: {reason}")
        p.next_start_at, p.queued = None, False
        if hold:
            self.hold(p)
        after = "forget" if forget else "idle" if idle and not hold else "stopped"
        if self.running(p) or p.state == State.STOPPING:
            self._drain_then_stop(p, reason, after)
        else:
            self._after_stop(p, after, reason)

    def stop_all(self, reason: str) -> None:
        for name in list(self.procs):
            self.stop(name, reason)

    # ---- start ---------------------------------------------------------------------------------
    def _conflict(self, p: Proc) -> str | None:
        spec = p.spec
        for other in self.procs.values():
            if other is p or spec is None or (other.state != State.STOPPING and other.drain_deadline is None):
                continue
            if other.rec.port == spec.port:
                return f"waiting for {other.rec.name} to free port {spec.port}"
            mine, theirs = set(spec.gpus or []), set(other.rec.gpus or [])
            if (spec.gpus is None or other.rec.gpus is None or mine & theirs) and (spec.gpus or other.rec.gpus):
                return f"waiting for {other.rec.name} to free its GPUs"
        return None

    def _start(self, p: Proc, reason: str, count: bool = False) -> None:
        if p.spec is None:
            self._set(p, State.FAILED if self.one_shot else p.state, "no valid spec to start")
            return
        why = self._conflict(p)
        if why:
            p.queued, p.count_next = True, p.count_next or count
            self._set(p, State.PENDING, why)
            return
        p.queued = False
        self._spawn(p, reason, count or p.count_next)

    def _spawn(self, p: Proc, reason: str, count: bool = False) -> None:
        """`count`: this start replaces a process (crash, liveness, spec change, `restart`)."""
        spec, rec, now = p.spec, p.rec, self.clock()
        assert spec is not None
        marker = f"{self._model_prefix(rec.name)}{os.urandom(4).hex()}"
        try:
            env = child_env(spec, marker)
        except SecretFileError as exc:
            rec.last_error = str(exc)
            self._set(p, State.BLOCKED, str(exc))
            return
        if rec.started_at is None and p.parent is None:
            # no record of an earlier process (first start, or its record was unreadable): a tagged
            # process of this model from before would be an orphan holding the port; never two live
            procs.sweep(self._model_prefix(rec.name), signal.SIGKILL)
        if p.parent is not None:  # a surge's new process: the log file the serving one does not write
            rec.log_alt = not p.parent.rec.log_alt
        path = self._log(p)
        rotate_if_needed(path, self.settings.log_max_bytes, self.settings.log_backups)
        why = self.workers.start(rec.name, spec.workers, env) if spec.workers else None  # group: workers first
        if why:
            self._crashed(p, why)
            return
        fd = open_log(path, f"starting {rec.name} ({reason}): {' '.join(spec.argv)}", self.store.note_write)
        prov, new_hash = self.provenance(spec.file), spec.spec_hash()
        self._rollout_end(p, history.INTERRUPTED, "replaced by another start")  # normally closed already
        if rec.spec_hash != new_hash or rec.started_at is None:
            rec.rollout = history.open_entry(rec.spec_hash, new_hash, prov)
            if rec.spec_hash is not None and not p.rolling_back:
                self.on_event("rollout_started", model=rec.name, from_hash=rec.spec_hash, to_hash=new_hash,
                              commit=prov.commit)
        try:
            child = self.popen(spec.argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True, close_fds=True)
        except OSError as exc:
            os.close(fd)
            rec.last_error = f"cannot execute {spec.argv[0]}: {exc.strerror or exc}"
            rec.pid = None
            self._rollout_end(p, history.FAILED, rec.last_error)
            self._set(p, State.FAILED if self.one_shot else State.BLOCKED, rec.last_error)
            return
        os.close(fd)
        ident = procs.identify(child.pid, self.proc_root)
        if count:
            rec.restarts += 1
        p.count_next = False
        p.backoff.unhealthy()  # a new run: it counts as a Ready run (backoff.py) only once it is Ready
        w = p.want
        rec.backend, rec.pid, rec.marker = spec.backend, child.pid, marker
        rec.start_ticks = ident.start_ticks if ident else None
        rec.boot_id = ident.boot_id if ident else procs.boot_id(self.proc_root)
        rec.spec_hash, rec.argv, rec.port, rec.host = spec.spec_hash(), list(spec.argv), spec.port, spec.host
        rec.binary_id = w.binary_id if w else None
        rec.settings = dict(w.settings) if w else None
        rec.placement = dict(spec.placement) if spec.placement is not None else None
        rec.env_digest = dict(w.env_digest) if w else {}
        rec.endpoint, rec.readiness_path, rec.gpus = spec.endpoint, spec.readiness_path, spec.gpus
        rec.stop_grace, rec.ready_timeout, rec.file = spec.stop_grace, spec.ready_timeout, spec.file
        rec.started_at, rec.ready_at, rec.provenance = time.time(), None, prov.to_json()
        p.popen, p.killed, p.probe_failures, p.last_probe = child, False, 0, ""
        p.ready_deadline, p.next_probe_at, p.next_start_at = now + spec.ready_timeout, now, None
        self._set(p, State.STARTING, f"pid {child.pid}: {reason}")

    # ---- stop ----------------------------------------------------------------------------------
    def _begin_stop(self, p: Proc, reason: str, after: str) -> None:
        if p.state == State.STOPPING:
            p.drain_deadline = None
            if p.after_stop != "forget" or after == "forget":
                p.after_stop = after
            return
        # the router sends nothing new from here (the drain flag) until the state says Stopping: the
        # process is signalled before its state is recorded
        if p.drain_deadline is None:
            p.drain_deadline = self.clock()
        p.after_stop = after
        if after != "crash":  # a crash closes it as failed (_crashed)
            self._rollout_end(p, history.INTERRUPTED, f"stopped before it was Ready: {reason}")
        p.stop_deadline = self.clock() + p.rec.stop_grace
        p.killed = False
        self.prober.forget(self._probe_key(p))
        if p.rec.pid and self.running(p):  # signal first, then record it
            procs.signal_group(p.rec.pid, signal.SIGTERM)
        procs.sweep(self._prefix(p), signal.SIGTERM)
        self._set(p, State.STOPPING, reason)
        p.drain_deadline = None

    def _prefix(self, p: Proc) -> str:
        """The owner tag of this spawn (its escaped descendants carry it too); without one recorded, every
        process of the model. A surge's two processes have tags of their own, never each other's."""
        return p.rec.marker if p.rec.marker else self._model_prefix(p.rec.name)

    def _model_prefix(self, name: str) -> str:
        """The owner tag every process of model `name` carries (each spawn adds its own suffix)."""
        return f"{self.owner}/{name}/"

    def _log(self, p: Proc) -> Path:
        return self.store.log_path(p.rec.name, p.rec.log_alt)

    def _probe_key(self, p: Proc) -> str:
        return p.rec.name if p.parent is None else f"{p.rec.name}+{p.role}"

    def _tick_stopping(self, p: Proc, now: float) -> None:
        leader = self.running(p)
        group = bool(p.rec.pid) and procs.group_alive(p.rec.pid, self.proc_root)
        if not leader and not group:
            if now < p.next_escapee_check:
                return
            p.next_escapee_check = now + ESCAPEE_POLL
            if not procs.find_marked(self._prefix(p)):
                self._after_stop(p, p.after_stop, "stopped")
                return
        if now >= p.stop_deadline and not p.killed:
            log.warning("%s: still running %gs after SIGTERM: SIGKILL to the group", p.rec.name, p.rec.stop_grace)
            if p.rec.pid and (leader or group):
                procs.signal_group(p.rec.pid, signal.SIGKILL)
            procs.sweep(self._prefix(p), signal.SIGKILL)
            p.killed = True
        elif p.killed and now >= p.stop_deadline + 5:
            procs.sweep(self._prefix(p), signal.SIGKILL)  # keep trying; never lose track
            p.stop_deadline = now

    def _after_stop(self, p: Proc, after: str, reason: str) -> None:
        p.rec.pid, p.popen = None, None
        if p.parent is not None:  # a surge's second process is gone (retired, or aborted)
            self._side_gone(p, reason)
            return
        self.workers.stop(p.rec.name)  # RPC group: the server is gone, now its workers
        name = p.rec.name
        if after == "forget":
            log.info("%s: %s -> (forgotten)", name, p.state.value)
            del self.procs[name]
            self._forget(name)
        elif after == "start":
            self._start(p, "restart", count=True)
        elif after == "crash":
            self._crashed(p, p.crash_msg)
        elif after == "idle":
            self._set(p, State.IDLE, reason)
        else:
            self._set(p, State.STOPPED, reason)

    # ---- the loop body -------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        if (self.unsaved or self._undeleted or self._history_unsaved) and now >= self._next_flush:
            self._next_flush = now + FLUSH_PERIOD
            self.flush()
        for p in list(self.procs.values()):
            try:
                self._tick_one(p, now)
                if p.successor is not None or p.retiring is not None:
                    self._tick_surge(p, now)
            except Exception:  # one model's trouble never stops the others
                log.exception("%s: supervisor error", p.rec.name)
        if now >= self._next_rotation:
            self._next_rotation = now + 10
            for name in self.procs:
                for alt in (False, True):
                    rotate_if_needed(self.store.log_path(name, alt), self.settings.log_max_bytes,
                                     self.settings.log_backups)

    def _tick_one(self, p: Proc, now: float) -> None:
        st = p.state
        if st == State.STOPPING:
            self._tick_stopping(p, now)
        elif st in (State.STARTING, State.READY, State.UNHEALTHY):
            if not self.running(p):
                self._gone(p)  # the one exit path (a drain's end included)
            elif p.drain_deadline is not None:
                self._tick_drain(p, now)
            elif p.spec is not None and p.spec.workers and (why := self.workers.dead(p.rec.name, p.spec.workers)):
                self._fail_running(p, why)  # llama-server cannot go on without it: restart the group
            elif not (self.one_shot and st != State.STARTING):
                self._tick_probe(p, now)
        elif p.queued:
            self._start(p, "port/GPUs freed")
        # after the branches above: a crash handled in this tick whose back-off is 0 restarts in it
        if p.state == State.CRASH_LOOP_BACK_OFF and p.next_start_at is not None and now >= p.next_start_at:
            if p.spec is not None:
                self._spawn(p, "back-off elapsed" if st == State.CRASH_LOOP_BACK_OFF else "restart at once",
                            count=True)

    def busy(self, wait_ready: bool = False) -> bool:
        """Something still in flight: stops (and queued starts); with wait_ready also starts."""
        for p in self.procs.values():
            if p.state == State.STOPPING or p.queued or p.drain_deadline is not None:
                return True
            if p.successor is not None or p.retiring is not None:
                return True
            if wait_ready and p.state == State.STARTING:
                return True
        return False

    def close(self) -> None:
        self.prober.close()
