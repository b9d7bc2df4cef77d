"""The daemon's git source (issue #24): `run` with a `source:` reads its manifests from a commit, and this
owner keeps that commit fresh without ever holding the control loop.

    poller thread   polls every interval (sources/poller.py: back-off after failures of the remote), or at
                    once after `poll_now()` (the webhook route, any thread). A fetch, a verification and
                    the unpacking of a tree happen here: a slow or hostile remote stalls no stop, probe or
                    API request. A switch moves STATE/source/current (sources/git.py).
    tick hook       on the control loop, between two passes: when `current` moved (a poll here, or `sync` /
                    `pin` from another process), STATE/source/serving is pointed at it and the daemon is
                    told, as a file change would tell it (the watcher does not see the switch of a link
                    inside the state dir). A pass therefore reads one commit, always through the same path
                    (STATE/source/serving/PATH), so a model whose manifest did not change renders the same
                    argv and is not restarted.

    gc              the same thread, after a poll, every so often (sources/gc.py's Schedule: 50 new commits
                    fetched, or a day since the last with at least one): `git gc` of STATE/source/repo.git
                    keeping the current, served, pinned and on-disk commits, so a branch force-pushed for
                    months does not grow the repository without bound. Its result is recorded in
                    STATE/source/last_gc (`source status`, the API) and counted here (/metrics).

The poller does not sync again before the loop serves the last switch, so the tree a pass reads is
never the one a later switch cleans away (trees.py keeps the current, the previous and the served tree).
A refused commit or an unreachable remote changes nothing that runs: the reason is logged once per
change (and counted, published as `source_refused`); a switch the daemon serves is `source_switched`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Callable

from xgen_declare.processes.core import EventSink
from xgen_declare.processes.hooks import Registry
from xgen_declare.sources import gc, trees
from xgen_declare.sources.gc import GcResult, Schedule
from xgen_declare.sources.git import Check, GitSource
from xgen_declare.sources.poller import Outcome, Poller, PollResult
from xgen_declare.sources.report import report
from xgen_declare.sources.spec import GitSpec
from xgen_declare.sources.state import StateFileError

__all__ = ["GitPoll", "recorded_spec", "spec_json"]

log = logging.getLogger("xgen_declare.reconciler.gitpoll")

ADOPT_WAIT = 1.0  # seconds between two looks at whether the loop serves the last switch (it also signals)
_DIGITS = re.compile(r"\d+")
JOIN_WAIT = 2.0   # seconds stop() waits for the poller thread (a git command in flight has its own timeout)


class GitPoll:
    def __init__(self, spec: GitSpec, state_dir: str, check: Check | None = None, *,
                 poller: Poller | None = None, wall: Callable[[], float] = time.time,
                 gc_schedule: Schedule | None = None):
        self.source = GitSource(spec, state_dir, check=check)
        self.poller = poller or Poller(self.source)
        self.gc_schedule = gc_schedule or Schedule(clock=self.poller.clock)
        self.last_gc: GcResult | None = None
        self.gc_runs = {"ok": 0, "failed": 0}    # collections by outcome (xgen_source_gc_runs_total)
        self.root = self.source.root
        self.wall = wall
        self.failures_total = 0                  # polls that ended with an error (xgen_source_poll_failures_total)
        self.last_success: float | None = None   # wall time of the last poll without one
        self.polls = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._served = threading.Event()
        self.sinks: Registry[EventSink] = Registry("source event sink", log)  # the API's, from its thread
        self._said: tuple | None = None
        self._refused: tuple | None = None
        self._thread: threading.Thread | None = None
        self._config: object | None = None  # the config the tick last compared with the spec
        self._nudge: Callable[[], None] = lambda: None

    @property
    def spec(self) -> GitSpec:
        return self.source.spec

    @property
    def manifests_dir(self) -> str:
        """The daemon's manifests dir: STATE/source/serving[/PATH] (the same path for every commit)."""
        link = self.root / trees.SERVING
        return str(link / self.spec.path if self.spec.path else link)

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, add_tick_hook: Callable[[Callable], None], nudge: Callable[[], None]) -> None:
        """Hook into the loop (`add_tick_hook`; `nudge` wakes it) and start polling (the first poll now).
        Called before the loop's first step: the commit current then is served from the first pass."""
        self._nudge = nudge
        current = trees.current_commit(self.root)
        if current is not None and current != trees.serving_commit(self.root):
            trees.serve(self.root, current)  # `sync` or `pin` ran while no daemon did; the loop has not begun
            log.info("source: serving commit %s", current[:12])
        add_tick_hook(self.tick)
        if current is None and not os.path.lexists(self.root / trees.SERVING):
            try:  # an empty manifests dir until the first good commit: nothing to run, nothing missing
                os.makedirs(self.manifests_dir, exist_ok=True)
            except OSError as exc:
                log.warning("source: cannot create %s: %s", self.manifests_dir, exc.strerror or exc)
        if current is None:
            log.warning("source %s: no good commit yet; models start once one is fetched, verified and valid "
                        "(polling every %gs)", self.spec.url, self.spec.interval)
        self._thread = threading.Thread(target=self._run, name="xgen-git-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._served.set()
        if self._thread is not None:
            self._thread.join(JOIN_WAIT)

    def poll_now(self) -> None:
        """Poll as soon as the thread is free (any thread may call this: the webhook route does)."""
        self._wake.set()

    def add_sink(self, fn: EventSink) -> None:
        self.sinks.add(fn)

    def remove_sink(self, fn: EventSink) -> None:
        self.sinks.remove(fn)

    def serving_commit(self) -> str | None:
        """The commit the daemon reads now."""
        return trees.serving_commit(self.root)

    def gc_record(self) -> dict | None:
        """The last collection's record (STATE/source/last_gc; also one a CLI or an earlier daemon made), or
        None: none, or damaged (the report names it)."""
        try:
            return gc.last_recorded(self.root)
        except StateFileError:
            return None

    def report(self) -> dict:
        """sources/report.py's object (what `status` and `source status` show), read now."""
        return report(self.source)

    # ---- the control loop's side ---------------------------------------------------------------------
    def tick(self, control) -> None:
        """Serve the current commit when it moved: point `serving` at it and mark the daemon dirty."""
        self._compare_config(control.env.config)
        commit = trees.current_commit(self.root)
        old = trees.serving_commit(self.root)
        if commit is None or commit == old:
            return
        trees.serve(self.root, commit)
        self._served.set()
        control.file_changed(f"git source: commit {commit[:12]}")
        last = self.poller.last
        signature = last.signature if last is not None and last.new == commit else None
        log.info("source: serving commit %s (was %s)%s", commit[:12], old[:12] if old else "none",
                 f", signed by {signature}" if signature else "")
        self._publish("source_switched", old=old, new=commit, url=self.spec.url, ref=self.spec.ref,
                      signature=signature)

    def _compare_config(self, config) -> None:
        """A `source:` edited in the running daemon's config is not followed until a restart: say so once."""
        if config is self._config:
            return
        self._config = config
        spec = config.git_spec()
        if spec is not None and spec != self.spec:
            log.warning("source: %s changed `source:`; this daemon keeps following %s until it is restarted",
                        config.file or "the config", self.spec.url)

    # ---- the poller thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poller.seconds_until_due())
            self._wake.clear()
            self._wait_served()
            if self._stop.is_set():
                return
            try:
                result = self.poller.poll_once()
            except Exception:  # a bug, not the remote: logged, the next poll comes at the interval
                log.exception("source: the poll failed")
                self._wake.wait(self.spec.interval)
                continue
            self._record(result)
            if self._behind():
                self._nudge()
            self.gc_schedule.note(result.fetched)
            if self.gc_schedule.due() and not self._stop.is_set():
                self.collect()

    def collect(self) -> GcResult:
        """`git gc` of the source's repository now (the poller thread, when the schedule says so)."""
        result = self.source.gc(now=self.wall())
        self.gc_schedule.done()
        self.last_gc = result
        self.gc_runs["failed" if result.error else "ok"] += 1
        if result.error:
            log.warning("source: %s; the repository keeps its objects until the next try", result.text())
        else:
            log.info("source: repository collected: %s", result.text())
        return result

    def _behind(self) -> bool:
        current = trees.current_commit(self.root)
        return current is not None and current != trees.serving_commit(self.root)

    def _wait_served(self) -> None:
        while self._behind() and not self._stop.is_set():
            self._served.wait(ADOPT_WAIT)
            self._served.clear()

    def _record(self, result: PollResult) -> None:
        self.polls += 1
        if result.error:
            self.failures_total += 1
        else:
            self.last_success = result.at or self.wall()
        error = _DIGITS.sub("N", result.error) if result.error else None  # "after 3 ms" is no new error
        said = (result.outcome, result.reason, result.fetched, error, result.new)
        if said != self._said:
            self._said = said
            self._log(result)
        refused = (result.reason, result.fetched, error) if result.error else None
        if refused is not None and refused != self._refused:
            self._publish("source_refused", commit=result.fetched, current=result.new,
                          reason=result.reason.value if result.reason else None, error=result.error)
        self._refused = refused

    def _log(self, r: PollResult) -> None:
        url = self.spec.url
        if r.error:
            keeps = f"{r.new[:12]} keeps running" if r.new else "no commit is served yet"
            log.warning("source %s: %s (%s); %s%s", url, r.error, r.reason.value if r.reason else "error", keeps,
                        f"; next try in {r.next_in:g}s" if r.failures else "")
            for p in r.problems:
                log.warning("  %s", p.format())
        elif r.outcome is Outcome.SWITCHED:
            log.info("source %s: fetched %s (was %s)", url, r.new[:12] if r.new else "none",
                     r.old[:12] if r.old else "none")
        elif r.outcome is Outcome.PINNED:
            log.info("source %s: pinned at %s; %s is at %s, not applied", url, r.new[:12] if r.new else "none",
                     self.spec.ref, r.fetched[:12] if r.fetched else "?")
        else:
            log.info("source %s: at %s", url, r.new[:12] if r.new else "none")

    def _publish(self, type_: str, **data) -> None:
        self.sinks.call(type_, **data)


def spec_json(spec: GitSpec) -> dict:
    """The spec as daemon.json records it ("source"), so that `status`, `pin`, `sync` and a later `run`
    without arguments find the source this state dir's daemon follows."""
    return dataclasses.asdict(spec)


def recorded_spec(info: dict) -> GitSpec | None:
    """The spec daemon.json records, or None (none, or not one we wrote)."""
    data = info.get("source")
    if not isinstance(data, dict):
        return None
    try:
        spec = GitSpec(**data)
    except TypeError:
        return None
    return spec if isinstance(spec.url, str) and isinstance(spec.ref, str) and isinstance(spec.path, str) else None
