"""The supervisor's records side (a mixin of `Supervisor`): adoption from the records at start, and
memory as the truth with the record as its copy.

`load()` adopts every recorded process that is still the same process (pid + start ticks + boot id)
and carries the owner marker the record names in its environment (procs.owned): zero restarts; a live
pid without that marker (a forged or foreign record) is not adopted, never signalled (no group kill,
no exit path), and reported in the record's last_error; a record whose own process is gone is settled
(a running one through the one exit path, health.py `_gone`: group, escapees, back-off; in one-shot
mode the plan starts it again), and an orphan of the model (tagged with its owner prefix but not named
by the record) is killed, so one name never has two live processes.

A record that cannot be written (state dir read-only or full) never stops supervision: the failure is
kept in `store.write_failures` (path + errno, for the log, `status` and /metrics), the record is
remembered in `unsaved` and written again by `flush()` every FLUSH_PERIOD until it succeeds; a
forgotten model whose record cannot be removed is retried the same way.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any, Callable

from xgen_declare.errors import StateWriteError
from xgen_declare.processes import history, procs
from xgen_declare.names import cut, escape_controls
from xgen_declare.processes.state_store import OWNER_ENV, Record
from xgen_declare.processes.health import LIVE
from xgen_declare.states import RUNNING_STATES, State

if TYPE_CHECKING:
    from xgen_declare.processes.proc import Proc

log = logging.getLogger("xgen_declare.processes.supervisor")

FLUSH_PERIOD = 1.0  # retry of records that could not be written


def foreign_words(rec: Record) -> str:
    marker = escape_controls(cut(rec.marker, 60)) if rec.marker else "none recorded"
    return (f"pid {rec.pid} of the record is alive but does not carry the record's owner marker "
            f"({OWNER_ENV}={marker}) in its environment: not adopted and never signalled (a forged or "
            "foreign record; the model is started again)")


class RecordsMixin:
    # attributes and methods of Supervisor (and RolloutMixin) used here
    procs: dict[str, "Proc"]
    store: Any
    unsaved: set[str]
    _undeleted: set[str]
    _history_unsaved: dict[str, list[dict]]

    proc_root: str
    _model_prefix: Callable[[str], str]
    clock: Callable[[], float]
    _write_history: Callable[[str], None]  # RolloutMixin's
    _new_proc: Callable[..., Any]
    _set: Callable[..., Any]
    _prefix: Callable[..., Any]
    _rollout_end: Callable[..., Any]
    _settle_interrupted_surge: Callable[..., Any]  # SurgeMixin's
    _gone: Callable[..., Any]  # HealthMixin's: the one exit path
    one_shot: bool

    def load(self) -> None:
        """Adopt every recorded process that is still the same process; zero restarts."""
        now = self.clock()
        for name, rec in self.store.load_all().items():
            p = self._new_proc(rec)
            self.procs[name] = p
            self._settle_interrupted_surge(p)  # never two processes of one model after a daemon restart
            alive = procs.matches(rec.pid, rec.start_ticks, rec.boot_id, self.proc_root)
            foreign = alive and not self._owns(rec)
            if foreign:
                alive = False
                log.warning("%s: %s", name, foreign_words(rec))
            st = p.state
            if alive:
                log.info("%s: adopted pid %s (%s)", name, rec.pid, st.value)
                if st == State.STOPPING:
                    p.stop_deadline = now + rec.stop_grace
                elif st in (State.READY, State.UNHEALTHY):
                    p.backoff.healthy()
                    p.next_probe_at = now
                else:
                    self._set(p, State.STARTING, "adopted before it was ready")
                    p.ready_deadline = now + rec.ready_timeout
            else:
                if st in RUNNING_STATES:
                    # a process of this model that the record does not name (started while the state
                    # dir could not be written) is an orphan holding the port: never two live
                    procs.sweep(self._model_prefix(name), signal.SIGKILL)
                if st in LIVE and rec.pid is not None and not foreign and not self.one_shot:
                    # this daemon noticed the end first: the one exit path (what is left of the group,
                    # escapees, back-off: a run recorded Ready counts as a Ready run, log tail, record)
                    if st != State.STARTING:
                        p.backoff.healthy()
                    self._gone(p, "exited while no daemon was watching")
                    continue
                if st in LIVE and not foreign:  # one-shot: the rest of its group too; the plan starts it (process gone)
                    procs.kill_left_group(rec.pid, rec.start_ticks, rec.boot_id, self.proc_root)
                if rec.pid is not None:
                    if foreign:
                        rec.last_error = foreign_words(rec)
                    elif st in RUNNING_STATES and st != State.STOPPING:
                        rec.last_error = "process exited while no daemon was watching"
                    rec.pid = None
                self._rollout_end(p, history.FAILED if st == State.STARTING else history.INTERRUPTED,
                                  "process gone while no daemon was watching")
                if st == State.STOPPING:
                    self._set(p, State.STOPPED, "process gone")
                elif st == State.CRASH_LOOP_BACK_OFF:
                    p.next_start_at = now
                self.save(rec)

    def _owns(self, rec: Record) -> bool:
        """The record's process is alive, the same process, and carries the record's owner marker."""
        return procs.owned(rec.pid, rec.start_ticks, rec.boot_id, rec.marker, self._model_prefix(rec.name),
                           self.proc_root)

    def save(self, rec: Record) -> bool:
        """Write the record; a failure is remembered (store.write_failures) and retried, never raised."""
        try:
            self.store.save(rec)
        except StateWriteError as exc:
            self.unsaved.add(rec.name)
            log.debug("%s: %s", rec.name, exc)
            return False
        self.unsaved.discard(rec.name)
        return True

    def _forget(self, name: str) -> None:
        self.unsaved.discard(name)
        try:
            self.store.delete(name)
            self._undeleted.discard(name)
        except StateWriteError:
            self._undeleted.add(name)

    def flush(self) -> None:
        """Write again what could not be written (the state dir may be writable again)."""
        for name in sorted(self._history_unsaved):
            self._write_history(name)
        for name in sorted(self.unsaved):
            p = self.procs.get(name)
            if p is None:
                self.unsaved.discard(name)
            else:
                self.save(p.rec)  # each on its own: one failing record never holds back the others
        for name in sorted(self._undeleted):
            if name in self.procs:
                self._undeleted.discard(name)  # declared again: its record is written instead
            else:
                self._forget(name)
