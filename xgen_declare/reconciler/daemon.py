"""The foreground daemon behind `run`: lock, adopt, watch, converge, supervise — until told to stop.

One thread owns every model (this loop); the watchdog thread, the probe threads and the signal
handlers only set flags and wake it. A reconcile pass runs
  * after file events, once the tree was quiet for `debounce` (an edit storm is coalesced; at most
    one pass per `max(debounce, 1s)` while events keep coming),
  * every `resync_interval` (a full re-read that also refreshes the inventory),
  * on SIGHUP and on requests from `restart` / `down` / `up`.
SIGINT / SIGTERM end the loop; models keep running (the next daemon adopts them) unless
`stop_on_exit`. Each part of a step (requests, the pass, the supervisor's tick, hooks) is guarded on
its own: an error in one is logged (the traceback once per distinct error, then one line at most
every ERROR_REPEAT seconds) and the others still run; a failing pass waits for the next resync.
A part that holds the loop longer than SLOW_PART seconds is logged as a warning (everything else
waited on it), so a stall shows in the log with its cause.

Work from other threads (the API) waits in a bounded inbox: `submit` refuses with LoopBusy when
INBOX_LIMIT requests wait, and a step runs at most INBOX_PER_STEP of them (and stops taking more after
INBOX_BUDGET seconds): the rest wait for the next step, so the supervisor's tick (stops, probes,
restarts) runs between them however many arrive. Reads never queue here: after each step the loop
publishes `snapshot` (snapshot.py), from which the API computes plans and details in its own threads.

A state dir that cannot be written never stops supervision (see supervisor.py). The daemon reports it
as `state_write_failed` in its log (once per pass, and when the set of failures changes), in
daemon.json for `status` (with the records memory is ahead of disk, so `status` shows the truth)
and on /metrics; recovery is automatic and logged once.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future
from typing import Callable, Mapping

from xgen_declare.processes import pids
from xgen_declare.reconciler.env import Env, record_paths
from xgen_declare.reconciler.plan import BLOCKED, VERB_REQUESTS, Request
from xgen_declare.errors import LoopBusy, StateBusyError, StateWriteError, XgenError
from xgen_declare.processes.probes import Prober
from xgen_declare.processes.core import EventSink
from xgen_declare.processes.hooks import Registry
from xgen_declare.processes.view import ModelView, view_of
from xgen_declare.reconciler.apply import Pass, PlanLog, compute, converge
from xgen_declare.reconciler.door import PassHook, TickHook
from xgen_declare.reconciler.downloads import Downloads
from xgen_declare.reconciler.gitpoll import GitPoll
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.reconciler.snapshot import LoopSnapshot, Previewer
from xgen_declare.reconciler.watch import Watcher

log = logging.getLogger("xgen_declare.reconciler.daemon")

IDLE_WAIT = 0.5
BUSY_WAIT = 0.05
ERROR_REPEAT = 60.0
SLOW_PART = 2.0  # a part of a step that holds the loop longer is logged (stops, probes and starts wait on it)
PUBLISH_PERIOD = 1.0
INBOX_LIMIT = 64       # requests waiting for the loop; more are refused (LoopBusy -> HTTP 503)
INBOX_PER_STEP = 8     # requests a step runs at most; the rest wait for the next step
INBOX_BUDGET = 0.5     # seconds of requests a step runs at most (one at least)


class Daemon:
    def __init__(self, env: Env, *, stop_on_exit: bool = False, clock: Callable[[], float] = time.monotonic):
        self.env, self.stop_on_exit, self.clock = env, stop_on_exit, clock
        self.part_timer: Callable[[], float] = time.monotonic  # measures a part of a step (SLOW_PART); a seam
        self.wake = threading.Event()
        self.stopping = False
        self.dirty_since: float | None = None
        self.dirty_last: float | None = None
        self.resync_now = False
        self.inventory = None
        self.next_resync = 0.0
        self.plan_log = PlanLog()
        self._last_config_error: str | None = None
        prober = Prober(env.config.reconciler.probe_timeout, on_done=self.wake.set)
        self.sup = Supervisor(env.store, env.config.reconciler, clock=clock, prober=prober,
                              proc_root=env.proc_root)
        self.watcher: Watcher | None = None
        self.passes = 0
        self.blocked_last_pass = False
        # the HTTP API (another thread) hands work to this loop here; see `submit`
        self.inbox: queue.Queue[tuple[Callable, Future]] = queue.Queue(maxsize=INBOX_LIMIT)
        # any thread adds and removes them (hooks.py); the loop calls them over a snapshot
        self.pass_hooks: Registry[PassHook] = Registry("pass hook", log)  # fn(pass, seconds) after each pass
        self.tick_hooks: Registry[TickHook] = Registry("tick hook", log)  # fn(control) once per loop step
        # on-demand models wanted running now (the router wakes them, its idle timers remove them);
        # idle_reasons: why one left (shown as the stop reason). Only this loop changes them.
        self._awake: set[str] = set()
        self.idle_reasons: dict[str, str] = {}
        self._errors_logged: dict[str, float] = {}  # error text -> when it was last logged
        self._write_report: set[tuple[str, int | None]] = set()  # failures (path, errno) last reported
        self._published: dict | None = None
        self._models_stopped = False
        self._next_publish = 0.0
        self.snapshot: LoopSnapshot | None = None  # what readers in other threads see (snapshot.py)
        self.source: GitPoll | None = None  # the git source's owner, when `run` follows one (gitpoll.py)
        self.downloads = Downloads(env, self.sup, self.file_changed)  # the model store's fetches (downloads.py)
        self._publish_snapshot()
        self.previewer = Previewer(lambda: self.snapshot, env.inventory,
                                   compute_fn=lambda *a, **k: compute(*a, fetches=self.downloads.lookup(), **k))

    # ---- wake-ups (any thread) -----------------------------------------------------------------
    def file_changed(self, path: str = "") -> None:
        now = self.clock()
        if self.dirty_since is None:
            self.dirty_since = now
        self.dirty_last = now
        self.wake.set()

    def submit(self, fn: Callable[["Daemon"], object]) -> Future:
        """Run fn(daemon) on the control loop (any thread may call this); the Future gets its result.
        LoopBusy when INBOX_LIMIT requests already wait (nothing was queued)."""
        fut: Future = Future()
        try:
            self.inbox.put_nowait((fn, fut))
        except queue.Full:
            raise LoopBusy(f"the daemon is busy: {INBOX_LIMIT} requests already wait for its control loop; "
                           "try again in a moment") from None
        self.wake.set()
        return fut

    def _run_inbox(self) -> None:
        """At most INBOX_PER_STEP requests, and none started after INBOX_BUDGET seconds; the rest next step."""
        deadline = time.monotonic() + INBOX_BUDGET
        for _ in range(INBOX_PER_STEP):
            try:
                fn, fut = self.inbox.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(self))
                except Exception as exc:  # goes back to the caller, the loop goes on
                    fut.set_exception(exc)
            if time.monotonic() >= deadline:
                break
        if not self.inbox.empty():
            self.wake.set()  # the next step comes at once, after the supervisor's tick

    def _publish_snapshot(self) -> None:
        """Replace `snapshot` (whole) when an input of a plan changed since the last one."""
        last = self.snapshot
        snap = LoopSnapshot(version=(last.version + 1) if last else 1, paths=tuple(self.env.paths),
                            config=self.env.config, inventory=self.inventory, seen=self.sup.observed(),
                            awake=frozenset(self._awake))
        if not snap.same_inputs(last):
            self.snapshot = snap

    # ---- the door (door.py): what api/ and router/ use, from any thread --------------------------------
    def model(self, name: str) -> ModelView | None:
        """The model's last published view (never a live Proc)."""
        return self.sup.views.get(name)

    def models(self) -> Mapping[str, ModelView]:
        return dict(self.sup.views)

    def preview(self) -> tuple[Pass, LoopSnapshot]:
        """The plan a pass would make now, from the last snapshot, computed in the caller's thread (blocking:
        the API calls it in a worker thread); never waits for the loop."""
        return self.previewer.get()

    def nudge(self) -> None:
        self.wake.set()

    def add_pass_hook(self, fn: PassHook) -> None:
        self.pass_hooks.add(fn)

    def remove_pass_hook(self, fn: PassHook) -> None:
        self.pass_hooks.remove(fn)

    def add_tick_hook(self, fn: TickHook) -> None:
        self.tick_hooks.add(fn)

    def remove_tick_hook(self, fn: TickHook) -> None:
        self.tick_hooks.remove(fn)

    def register_router(self, in_flight: Callable[[str], int], in_flight_at: Callable[[str, int], int]) -> None:
        """A stop drains the requests the router forwarded to the model; a surge the old process's."""
        self.sup.hooks.register_router(in_flight, in_flight_at)

    def unregister_router(self) -> None:
        self.sup.hooks.unregister_router()

    def add_event_sink(self, fn: EventSink) -> None:
        """fn(type, **data) for rollout events (rollout_started/succeeded/failed, rolled_back)."""
        self.sup.hooks.register_events(fn)

    def remove_event_sink(self, fn: EventSink) -> None:
        self.sup.hooks.unregister_events(fn)

    # ---- the control side of the door: only on this loop (submitted work, tick hooks) ------------------
    def trial(self, awake: set[str]) -> Pass:
        """The plan a pass would make now if `awake` were the on-demand models wanted running (nothing is
        executed): the router's on-demand admission asks it."""
        inventory = self.inventory if self.inventory is not None else self.env.inventory()
        return compute(self.env.paths, self.env.config, inventory, self.sup.observed(), awake=awake,
                       fetches=self.downloads.fetcher())

    def known(self) -> list[str]:
        """The models the supervisor knows (declared or not), sorted."""
        return sorted(self.sup.procs)

    def live(self, name: str) -> ModelView | None:
        """The model as it is now (on the loop, nothing is older than this)."""
        p = self.sup.procs.get(name)
        return view_of(p) if p is not None else None

    def running(self, name: str) -> bool:
        """A process of the model runs (or is being stopped)."""
        p = self.sup.procs.get(name)
        return p is not None and (self.sup.running(p) or p.state == State.STOPPING)

    @property
    def awake(self) -> frozenset[str]:
        """On-demand models wanted running now (the router wakes them, its idle timers let them go)."""
        return frozenset(self._awake)

    def wake_model(self, name: str) -> None:
        self._awake.add(name)
        self.idle_reasons.pop(name, None)

    def let_idle(self, name: str, reason: str) -> None:
        """`name` leaves the awake set; `reason` is shown as its stop reason."""
        self._awake.discard(name)
        self.idle_reasons[name] = reason

    def _on_hup(self, *_: object) -> None:
        self.resync_now = True
        self.wake.set()

    def _on_stop(self, signum: int, _frame: object) -> None:
        log.info("received %s: shutting down (%s)", signal.Signals(signum).name,
                 "stopping every model" if self.stop_on_exit else "models keep running")
        self.stopping = True
        self.wake.set()

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        store = self.env.store
        if not store.try_lock():
            raise StateBusyError(f"another xgen-declare (pid {store.lock_holder() or '?'}) uses the state dir "
                                 f"{store.root}; one daemon per state dir")
        ident = pids.identify(os.getpid(), self.env.proc_root)
        record_paths(self.env)
        info = store.daemon_info()
        info.update({"pid": os.getpid(), "start_ticks": ident.start_ticks if ident else None,
                     "boot_id": ident.boot_id if ident else None, "started_at": time.time()})
        info.pop("api", None)  # set by the API server once it listens (shown by `doctor`)
        store.write_daemon_info(info)
        self.sup.load()
        self._awake = {name for name, p in self.sup.procs.items() if self.sup.running(p)}  # adopted: keep
        self._publish_snapshot()
        files = [self.env.config_path] if self.env.config_path else \
            [os.path.join(p, n) for p in self.env.paths for n in ("xgen-declare.yaml", "xgen-declare.yml")]
        dirs = list(self.env.paths)
        tdir = self.env.config.resolve(self.env.config.templates_dir)
        if tdir:
            dirs.append(tdir)
        self.watcher = Watcher(dirs, files, self.file_changed, ignore=[str(store.root)])  # its own writes
        self.watcher.start()

    def install_signals(self) -> None:
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)

    def run(self) -> int:
        self.start()
        try:
            self.loop()
        finally:
            self.shutdown()
        return 0

    def loop(self) -> None:
        while not self.stopping:
            self.step()
            self.wake.wait(self._wait_time())
            self.wake.clear()

    def step(self) -> None:
        now = self.clock()
        passes = self.passes
        self._guard("control requests", self._take_requests)
        self._guard("API requests", self._run_inbox)
        if self.resync_now or now >= self.next_resync:
            self.resync_now = False
            # moved before the pass: a pass that fails is tried again at the next resync, not every step
            self.next_resync = now + self.env.config.reconciler.resync_interval
            self._guard("reconcile pass", self.reconcile, True)
        elif self.dirty_since is not None:
            debounce = self.env.config.reconciler.debounce
            quiet = now - (self.dirty_last or now) >= debounce
            starving = now - self.dirty_since >= max(debounce, 1.0)
            if quiet or starving:
                self._guard("reconcile pass", self.reconcile, False)
        ready_before = self._ready_names()
        self._guard("supervisor", self.sup.tick)
        self._guard("downloads", self.downloads.show)
        if self.blocked_last_pass and self._ready_names() - ready_before:
            # something became Ready while a model waits on others (a Ray head, freed memory...):
            # plan again now instead of at the next resync
            self.file_changed("a model became Ready")
        for hook in self.tick_hooks.snapshot():  # each guarded like the loop's other parts (slow, repeated)
            self._guard("tick hook", hook, self)
        self._guard("state report", self._report_writes, now, self.passes != passes)
        self._guard("snapshot", self._publish_snapshot)

    def _guard(self, what: str, fn: Callable, *args: object) -> None:
        """Run one part of a step; the daemon never dies of it and the log is not flooded; a part that
        held the loop longer than SLOW_PART is logged."""
        started = self.part_timer()
        try:
            fn(*args)
        except Exception as exc:
            self._failed(what, exc)
        took = self.part_timer() - started
        if took > SLOW_PART:
            log.warning("slow control loop: %s took %.1fs (stops, starts and probes waited for it)", what, took)

    def _failed(self, what: str, exc: Exception) -> None:
        key = f"{what}: {type(exc).__name__}: {exc}"
        now = time.monotonic()
        last = self._errors_logged.get(key)
        if last is None:
            log.error("%s failed", what, exc_info=exc)
        elif now - last >= ERROR_REPEAT:
            log.error("%s failed again: %s: %s", what, type(exc).__name__, exc)
        else:
            return
        if len(self._errors_logged) > 100:
            self._errors_logged.clear()
        self._errors_logged[key] = now

    def _take_requests(self) -> None:
        requests = self.env.store.take_requests()
        if requests:
            self._handle(requests)

    def _report_writes(self, now: float, passed: bool) -> None:
        """`state_write_failed` in the log (once per pass and on change) and in daemon.json (for status)."""
        failures = self.env.store.write_failures
        keys = {(path, err.errno) for path, err in failures.items()}
        changed = keys != self._write_report
        if changed or (passed and keys):
            if keys:
                log.warning("state_write_failed: %s; supervision goes on from memory, the records are written "
                            "again once the state dir is writable",
                            "; ".join(str(failures[path]) for path in sorted(failures)))
            elif self._write_report:
                log.info("state dir writable again: every record is written")
            self._write_report = keys
        if changed or (keys and now >= self._next_publish):
            self._next_publish = now + PUBLISH_PERIOD
            self._publish(failures)

    def _publish(self, failures: dict) -> None:
        procs_ = self.sup.procs
        facts = {"state_write_failed": [failures[p].to_json() for p in sorted(failures)],
                 "unsaved": {n: procs_[n].rec.to_json() for n in sorted(self.sup.unsaved) if n in procs_}}
        if facts == self._published:
            return
        info = self.env.store.daemon_info()
        for key, value in facts.items():
            if value:
                info[key] = value
            else:
                info.pop(key, None)
        try:
            self.env.store.write_daemon_info(info)
            self._published = facts
        except StateWriteError:
            pass  # in store.write_failures: reported with the others

    def _ready_names(self) -> set[str]:
        return {name for name, p in self.sup.procs.items() if p.state == State.READY}

    def _wait_time(self) -> float:
        wait = BUSY_WAIT if self.sup.busy(wait_ready=True) else IDLE_WAIT  # starts, stops, drains, surges
        if self.dirty_since is not None:
            wait = min(wait, self.env.config.reconciler.debounce / 2 or BUSY_WAIT)
        return max(0.01, wait)

    def stop_models(self) -> None:
        """With --stop-on-exit: drain (while the router still serves, see cli/run.py) and stop every model."""
        if not self.stop_on_exit or self._models_stopped:
            return
        self._models_stopped = True
        self.sup.stop_all("daemon exits with --stop-on-exit")
        while self.sup.busy():
            self.sup.tick()
            time.sleep(BUSY_WAIT)

    def shutdown(self) -> None:
        self.stop_models()
        if self.watcher:
            self.watcher.stop()
        self.downloads.close()
        self.sup.close()
        info = self.env.store.daemon_info()
        info["pid"] = None
        for key in ("state_write_failed", "unsaved"):
            info.pop(key, None)
        try:
            self.env.store.write_daemon_info(info)
        except StateWriteError as exc:
            log.warning("state_write_failed: %s (the lock is released all the same)", exc)
        self.env.store.unlock()
        log.info("daemon stopped")

    # ---- work ----------------------------------------------------------------------------------
    def _handle(self, requests: list[dict]) -> None:
        """`down` / `up` / `restart` from the CLI: inputs of the next pass's plan."""
        asked: dict[str, Request] = {}
        for req in requests:
            verb, names = req.get("verb"), [n for n in req.get("names") or [] if isinstance(n, str)]
            targets = names or sorted(self.sup.procs)
            log.info("request: %s %s", verb, " ".join(targets))
            if verb in VERB_REQUESTS:
                asked.update({name: Request(verb) for name in targets})
        self.reconcile(full=False, requests=asked)

    def _record_config_error(self, text: str | None) -> None:
        """Shown by `status`: the daemon keeps its last good config while the file is invalid."""
        info = self.env.store.daemon_info()
        if text is None:
            info.pop("config_error", None)
        else:
            info["config_error"] = text
        try:
            self.env.store.write_daemon_info(info)
        except StateWriteError:
            pass  # in store.write_failures: reported once per pass

    def reconcile(self, full: bool, requests: Mapping[str, Request] | None = None):
        """One pass; returns the `Pass` (None when the config is invalid and nothing was asked: with
        `requests`, the last good config serves, so `down` works while the file is being fixed)."""
        self.dirty_since = self.dirty_last = None
        t0 = time.monotonic()
        settings = self.env.config.reconciler
        try:
            config = self.env.load_config()
        except XgenError as exc:
            text = str(exc)
            if text != self._last_config_error:
                log.error("config invalid, nothing changed until it is fixed:\n%s", text)
                self._last_config_error = text
                self._record_config_error(text)
            self.next_resync = self.clock() + settings.resync_interval
            if not requests:
                return None
            config = self.env.config
        else:
            if self._last_config_error is not None:
                self._record_config_error(None)
            self._last_config_error = None
        self.env.config = config
        self.sup.settings = config.reconciler
        if full or self.inventory is None:
            self.inventory = self.env.inventory()
            if self.watcher:
                self.watcher.ensure()
        # a running model that was not on-demand stays awake if it turns on-demand: an in-place change
        # (rollout.py); the router's idle timer stops it later
        self._awake |= {n for n, p in self.sup.procs.items()
                       if not (p.rec.settings is not None and p.rec.settings.on_demand) and self.sup.running(p)}
        result = converge(self.sup, self.env.paths, config, self.inventory, self.plan_log, awake=self._awake,
                          idle_reasons=self.idle_reasons, requests=requests, fetches=self.downloads.fetcher())
        self.downloads.after_pass(result.fetching, result.sources, result.unsure())
        self.blocked_last_pass = any(a.kind == BLOCKED for a in result.plan.actions)
        self.passes += 1
        self.next_resync = self.clock() + config.reconciler.resync_interval
        self.pass_hooks.call(result, time.monotonic() - t0)
        return result
