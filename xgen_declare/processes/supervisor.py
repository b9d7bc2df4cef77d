"""The supervisor keeps processes alive: spawn, stop, and the state machine driven by `tick()`.

It carries out what the executor (reconciler/apply.py) asks, one model at a time, and never plans.
It is driven by `tick()` (no blocking waits), in the daemon (`run`) and, in one-shot mode, in
`apply`/`down`/`restart` when no daemon runs. Every state change goes through `set_state` (and so
`states.transition`) and is written to the model's record at once; what a stop leads to is a
`lifecycle.StopIntent`, which of a model's processes a Proc is a `lifecycle.Role`. The supervisor
spawns and stops; its collaborators, reached through the typed interface in core.py, do one job each:
records.py (writes that may fail), adoption.py (the records found at start), health.py (probes, the
one exit path, crashes, back-off), rollouts.py (drain, in-place updates, rollback), surge.py.

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
from xgen_declare.processes import history, pids
from xgen_declare.processes.backoff import Backoff
from xgen_declare.processes.logfiles import open_log, rotate_if_needed
from xgen_declare.processes.probes import Prober
from xgen_declare.errors import SecretFileError
from xgen_declare.processes.adoption import adopt_all
from xgen_declare.processes.core import Hooks
from xgen_declare.processes.health import Health
from xgen_declare.processes.history import Result
from xgen_declare.processes.lifecycle import Ending, Role, StopIntent
from xgen_declare.processes.provenance import Provenance, of_file
from xgen_declare.processes.records import FLUSH_PERIOD, RecordWriter
from xgen_declare.processes.rollouts import Rollouts
from xgen_declare.processes.supervised import Proc, child_env
from xgen_declare.processes.surge import Surges
from xgen_declare.processes.view import ModelView, view_of
from xgen_declare.processes.rpc_workers import Workers
from xgen_declare.processes.spec import Rendered, Seen, Want
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.states import State, transition

log = logging.getLogger("xgen_declare.processes.supervisor")

ESCAPEE_POLL = 0.3


class Supervisor:
    def __init__(self, store: StateStore, settings: Reconciler | None = None, *,
                 clock: Callable[[], float] = time.monotonic, popen: Callable = subprocess.Popen,
                 prober: Prober | None = None, one_shot: bool = False, proc_root: str = pids.PROC,
                 provenance: Callable[[str | None], Provenance] = of_file):
        self.store = store
        self.settings = settings or Reconciler()
        self.clock = clock
        self.popen = popen
        self.prober = prober or Prober(self.settings.probe_timeout)
        self.one_shot = one_shot
        self.proc_root = proc_root
        self.provenance = provenance
        self.owner = store.owner_id()
        self.procs: dict[str, Proc] = {}
        self._next_rotation = 0.0
        self._next_flush = 0.0
        self.workers = Workers(self.owner, self.store.log_path, popen)  # llama.cpp RPC groups
        self.hooks = Hooks()                 # the router's in-flight counts, the API's rollout events
        self.views: dict[str, ModelView] = {}  # what other threads read of each model (view.py)
        self.records = RecordWriter(store)
        self.health = Health(self)
        self.rollouts = Rollouts(self)
        self.surges = Surges(self)

    # ---- the interface of core.Core -------------------------------------------------------------
    def new_proc(self, rec: Record) -> Proc:
        s = self.settings
        return Proc(rec, Backoff(s.backoff_base, s.backoff_max, s.backoff_reset, self.clock))

    def set_state(self, p: Proc, new: State, reason: str = "") -> None:
        """THE state change of a process, through states.transition, written at once. A surge's extra
        process changes its own state (kept in the model's record), not the model's."""
        r = p.rec
        if p.role is not Role.MAIN:
            r.state = transition(r.name, p.state, new, reason, process=f"{p.role} process, pid {r.pid}").value
            self.surges.save_side(p)
            return
        detail = {"restarts": r.restarts, "pid": r.pid, "port": r.port, "last_error": r.last_error}
        r.state = transition(r.name, p.state, new, reason, detail).value
        self.publish(p)
        self.records.save(r)

    def set_drain(self, p: Proc, deadline: float | None) -> None:
        """Set (or clear) the drain flag and publish it at once: the router reads it before it forwards."""
        p.drain_deadline = deadline
        if p.role is Role.MAIN:
            self.publish(p)

    def publish(self, p: Proc) -> None:
        """Replace the model's view (view.py) with what it is now."""
        if self.procs.get(p.rec.name) is p:
            self.views[p.rec.name] = view_of(p)

    def publish_all(self) -> None:
        views = {name: view_of(p) for name, p in self.procs.items()}
        for name in set(self.views) - set(views):
            self.views.pop(name, None)
        self.views.update(views)

    def running(self, p: Proc) -> bool:
        if p.popen is not None:
            return p.popen.poll() is None
        return pids.matches(p.rec.pid, p.rec.start_ticks, p.rec.boot_id, self.proc_root)

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
            p = self.procs[name] = self.new_proc(Record(name=name))
            self.records.declared(name)
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
        self.publish(p)

    def release_hold(self, p: Proc) -> None:
        p.rec.held, p.rec.held_hash = False, None
        self.publish(p)

    def cancel_drain(self, p: Proc, reason: str) -> None:
        if p.drain_deadline is not None:
            log.info("%s: wanted running again: drain cancelled (%s)", p.rec.name, reason)
            self.set_drain(p, None)

    def start(self, p: Proc, reason: str, count: bool = False) -> None:
        """Start unless it runs (or a start is queued); `count`: it replaces a process that went away.
        A process found gone ends through the one exit path first, and then its back-off decides when
        it starts again (the tick), never this start."""
        if self.health.exit_unhandled(p):
            self.health.gone(p)
        if p.state == State.CRASH_LOOP_BACK_OFF and p.next_start_at is not None and count:
            return
        if not (p.queued or self.running(p)):
            self.start_when_free(p, reason, count=count)

    def keep(self, p: Proc, reason: str, settle_stopped: bool = False) -> None:
        """Nothing to do, but a model that does not run shows why: Invalid, or Stopped (held, disabled)."""
        if p.want is not None and p.rec.settings is None and self.running(p):
            p.rec.settings = p.want.settings  # a record from before settings were recorded
        if self.running(p) or p.state in (State.STOPPING, State.CRASH_LOOP_BACK_OFF) or p.queued:
            return
        if p.rec.manifest_error:
            self.set_state(p, State.INVALID, reason)
        elif p.rec.held or settle_stopped:
            self.set_state(p, State.STOPPED, reason)

    def idle(self, p: Proc, reason: str) -> None:
        """An on-demand model nobody wants now: no retries, shown as Idle once nothing runs."""
        if self.running(p) or p.state == State.STOPPING:
            return
        p.next_start_at, p.queued = None, False
        self.set_state(p, State.IDLE, reason)

    def block(self, p: Proc, reason: str) -> None:
        p.rec.last_error = reason
        if not self.running(p) and p.state != State.STOPPING:
            p.next_start_at, p.queued = None, False
            self.set_state(p, State.BLOCKED, reason)

    def downloading(self, p: Proc, reason: str) -> None:
        """Its source is being fetched: not started (a running process of the old files serves on)."""
        if self.running(p) or p.state == State.STOPPING:
            return
        p.next_start_at, p.queued = None, False
        p.rec.last_error = None
        self.set_state(p, State.DOWNLOADING, reason)

    def restart(self, name: str, reason: str) -> None:
        p = self.procs[name]
        if self.health.exit_unhandled(p):
            self.health.gone(p)  # its leftovers first; the restart asked for goes on at once
        p.next_start_at, p.rolling_back = None, False
        if self.running(p) or p.state == State.STOPPING:
            self.rollouts.drain_then_stop(p, reason, StopIntent.START)
        elif not p.queued:
            self.start_when_free(p, reason)

    def stop(self, name: str, reason: str, *, forget: bool = False, hold: bool = False, idle: bool = False) -> None:
        """`idle`: an on-demand model stopped for want of requests; it ends Idle instead of Stopped."""
        p = self.procs.get(name)
        if p is None:
            return
        if self.health.exit_unhandled(p):
            self.health.gone(p)  # a stop of a process found gone still kills what is left of it
        self.surges.abort(p, f"stopped: {reason}")
        p.next_start_at, p.queued = None, False
        if hold:
            self.hold(p)
        after = StopIntent.FORGET if forget else StopIntent.IDLE if idle and not hold else StopIntent.STOPPED
        if self.running(p) or p.state == State.STOPPING:
            self.rollouts.drain_then_stop(p, reason, after)
        else:
            self.after_stop(p, after, reason)

    def stop_all(self, reason: str) -> None:
        for name in list(self.procs):
            self.stop(name, reason)

    def surge(self, p: Proc, spec: Rendered, want: Want | None, reason: str) -> None:
        """Start `spec` beside the model's running process; it takes over once Ready (surge.py)."""
        self.surges.surge(p, spec, want, reason)

    def abort_surge(self, p: Proc, reason: str) -> None:
        self.surges.abort(p, reason)

    def update_in_place(self, p: Proc, reason: str) -> None:
        self.rollouts.update_in_place(p, reason)

    def settle_exits(self) -> list[str]:
        """Before a plan: every process found gone ends through the one exit path (health.py)."""
        return self.health.settle_exits()

    # ---- records -------------------------------------------------------------------------------
    def load(self) -> None:
        """Adopt what the state dir records (adoption.py)."""
        adopt_all(self, self.store)
        self.publish_all()

    def save(self, rec: Record) -> bool:
        return self.records.save(rec)

    def flush(self) -> None:
        self.records.flush(self.procs)

    @property
    def unsaved(self) -> set[str]:
        """Models whose record could not be written yet (memory is ahead of disk)."""
        return self.records.unsaved

    def draining(self, name: str) -> bool:
        """The router sends NAME nothing new (its new requests wait): it is drained before a stop."""
        return self.rollouts.draining(name)

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

    def start_when_free(self, p: Proc, reason: str, count: bool = False) -> None:
        if p.spec is None:
            self.set_state(p, State.FAILED if self.one_shot else p.state, "no valid spec to start")
            return
        why = self._conflict(p)
        if why:
            p.queued, p.count_next = True, p.count_next or count
            self.set_state(p, State.PENDING, why)
            return
        p.queued = False
        self.spawn(p, reason, count or p.count_next)

    def spawn(self, p: Proc, reason: str, count: bool = False) -> None:
        """`count`: this start replaces a process (crash, liveness, spec change, `restart`)."""
        spec, rec, now = p.spec, p.rec, self.clock()
        assert spec is not None
        marker = f"{self.model_prefix(rec.name)}{os.urandom(4).hex()}"
        try:
            env = child_env(spec, marker)
        except SecretFileError as exc:
            rec.last_error = str(exc)
            self.set_state(p, State.BLOCKED, str(exc))
            return
        if rec.started_at is None and p.parent is None:
            # no record of an earlier process (first start, or its record was unreadable): a tagged
            # process of this model from before would be an orphan holding the port; never two live
            pids.sweep(self.model_prefix(rec.name), signal.SIGKILL)
        if p.parent is not None:  # a surge's new process: the log file the serving one does not write
            rec.log_alt = not p.parent.rec.log_alt
        path = self.log_path(p)
        rotate_if_needed(path, self.settings.log_max_bytes, self.settings.log_backups)
        why = self.workers.start(rec.name, spec.workers, env) if spec.workers else None  # group: workers first
        if why:
            self.health.crashed(p, Ending(why))
            return
        fd = open_log(path, f"starting {rec.name} ({reason}): {' '.join(spec.argv)}", self.store.note_write)
        prov, new_hash = self.provenance(spec.file), spec.spec_hash()
        self.records.rollout_end(p, Result.INTERRUPTED, "replaced by another start")  # normally closed already
        if rec.spec_hash != new_hash or rec.started_at is None:
            rec.rollout = history.open_entry(rec.spec_hash, new_hash, prov)
            if rec.spec_hash is not None and not p.rolling_back:
                self.hooks.event("rollout_started", model=rec.name, from_hash=rec.spec_hash, to_hash=new_hash,
                              commit=prov.commit)
        try:
            child = self.popen(spec.argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True, close_fds=True)
        except OSError as exc:
            os.close(fd)
            rec.last_error = f"cannot execute {spec.argv[0]}: {exc.strerror or exc}"
            rec.pid = None
            self.records.rollout_end(p, Result.FAILED, rec.last_error)
            self.set_state(p, State.FAILED if self.one_shot else State.BLOCKED, rec.last_error)
            return
        os.close(fd)
        pid_ident = pids.identify(child.pid, self.proc_root)
        if count:
            rec.restarts += 1
        p.count_next = False
        p.backoff.unhealthy()  # a new run: it counts as a Ready run (backoff.py) only once it is Ready
        w = p.want
        rec.take(spec.identity(w.binary_id if w else None, w.env_digest if w else None))
        rec.pid, rec.marker = child.pid, marker
        rec.start_ticks = pid_ident.start_ticks if pid_ident else None
        rec.boot_id = pid_ident.boot_id if pid_ident else pids.boot_id(self.proc_root)
        rec.settings, rec.placement = (w.settings if w else None), spec.placement
        rec.endpoint, rec.readiness_path = spec.endpoint, spec.readiness_path
        rec.stop_grace, rec.ready_timeout = spec.stop_grace, spec.ready_timeout
        rec.started_at, rec.ready_at, rec.provenance = time.time(), None, prov
        p.popen, p.killed, p.probe_failures, p.last_probe = child, False, 0, ""
        p.ready_deadline, p.next_probe_at, p.next_start_at = now + spec.ready_timeout, now, None
        self.set_state(p, State.STARTING, f"pid {child.pid}: {reason}")

    # ---- stop ----------------------------------------------------------------------------------
    def begin_stop(self, p: Proc, reason: str, after: StopIntent) -> None:
        if p.state == State.STOPPING:
            self.set_drain(p, None)
            p.after_stop = p.after_stop.then(after)
            return
        # the router sends nothing new from here (the drain flag) until the state says Stopping: the
        # process is signalled before its state is recorded
        if p.drain_deadline is None:
            self.set_drain(p, self.clock())
        p.after_stop = after
        if after is not StopIntent.CRASH:  # a crash closes it as failed (health.crashed)
            self.records.rollout_end(p, Result.INTERRUPTED, f"stopped before it was Ready: {reason}")
        p.stop_deadline = self.clock() + p.rec.stop_grace
        p.killed = False
        self.prober.forget(self.probe_key(p))
        if p.rec.pid and self.running(p):  # signal first, then record it
            pids.signal_group(p.rec.pid, signal.SIGTERM)
        pids.sweep(self.prefix(p), signal.SIGTERM)
        self.set_state(p, State.STOPPING, reason)
        self.set_drain(p, None)

    def prefix(self, p: Proc) -> str:
        """The owner tag of this spawn (its escaped descendants carry it too); without one recorded, every
        process of the model. A surge's two processes have tags of their own, never each other's."""
        return p.rec.marker if p.rec.marker else self.model_prefix(p.rec.name)

    def model_prefix(self, name: str) -> str:
        """The owner tag every process of model `name` carries (each spawn adds its own suffix)."""
        return f"{self.owner}/{name}/"

    def log_path(self, p: Proc) -> Path:
        return self.store.log_path(p.rec.name, p.rec.log_alt)

    def probe_key(self, p: Proc) -> str:
        return p.rec.name if p.parent is None else f"{p.rec.name}+{p.role}"

    def tick_stopping(self, p: Proc, now: float) -> None:
        leader = self.running(p)
        group = bool(p.rec.pid) and pids.group_alive(p.rec.pid, self.proc_root)
        if not leader and not group:
            if now < p.next_escapee_check:
                return
            p.next_escapee_check = now + ESCAPEE_POLL
            if not pids.find_marked(self.prefix(p)):
                self.after_stop(p, p.after_stop, "stopped")
                return
        if now >= p.stop_deadline and not p.killed:
            log.warning("%s: still running %gs after SIGTERM: SIGKILL to the group", p.rec.name, p.rec.stop_grace)
            if p.rec.pid and (leader or group):
                pids.signal_group(p.rec.pid, signal.SIGKILL)
            pids.sweep(self.prefix(p), signal.SIGKILL)
            p.killed = True
        elif p.killed and now >= p.stop_deadline + 5:
            pids.sweep(self.prefix(p), signal.SIGKILL)  # keep trying; never lose track
            p.stop_deadline = now

    def after_stop(self, p: Proc, after: StopIntent, reason: str) -> None:
        p.rec.pid, p.popen = None, None
        if p.parent is not None:  # a surge's second process is gone (retired, or aborted)
            self.surges.side_gone(p, reason)
            return
        self.workers.stop(p.rec.name)  # RPC group: the server is gone, now its workers
        name = p.rec.name
        if after is StopIntent.FORGET:
            log.info("%s: %s -> (forgotten)", name, p.state.value)
            del self.procs[name]
            self.views.pop(name, None)
            self.records.forget(name)
        elif after is StopIntent.START:
            self.start_when_free(p, "restart", count=True)
        elif after is StopIntent.CRASH:
            self.health.crashed(p, p.crash or Ending(reason))
        elif after is StopIntent.IDLE:
            self.set_state(p, State.IDLE, reason)
        else:
            self.set_state(p, State.STOPPED, reason)

    # ---- the loop body -------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        if self.records.behind and now >= self._next_flush:
            self._next_flush = now + FLUSH_PERIOD
            self.records.flush(self.procs)
        for p in list(self.procs.values()):
            try:
                self._tick_one(p, now)
                if p.successor is not None or p.retiring is not None:
                    self.surges.tick(p, now)
            except Exception:  # one model's trouble never stops the others
                log.exception("%s: supervisor error", p.rec.name)
        self.publish_all()
        if now >= self._next_rotation:
            self._next_rotation = now + 10
            for name in self.procs:
                for alt in (False, True):
                    rotate_if_needed(self.store.log_path(name, alt), self.settings.log_max_bytes,
                                     self.settings.log_backups)

    def _tick_one(self, p: Proc, now: float) -> None:
        st = p.state
        if st == State.STOPPING:
            self.tick_stopping(p, now)
        elif st in (State.STARTING, State.READY, State.UNHEALTHY):
            if not self.running(p):
                self.health.gone(p)  # the one exit path (a drain's end included)
            elif p.drain_deadline is not None:
                self.rollouts.tick_drain(p, now)
            elif p.spec is not None and p.spec.workers and (why := self.workers.dead(p.rec.name, p.spec.workers)):
                self.health.fail_running(p, Ending(why))  # llama-server cannot go on without it: restart the group
            elif not (self.one_shot and st != State.STARTING):
                self.health.tick_probe(p, now)
        elif p.queued:
            self.start_when_free(p, "port/GPUs freed")
        # after the branches above: a crash handled in this tick whose back-off is 0 restarts in it
        if p.state == State.CRASH_LOOP_BACK_OFF and p.next_start_at is not None and now >= p.next_start_at:
            if p.spec is not None:
                self.spawn(p, "back-off elapsed" if st == State.CRASH_LOOP_BACK_OFF else "restart at once",
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
