"""Adoption: what a daemon (or a one-shot verb) finds in the state dir when it starts.

`adopt_all()` adopts every recorded process that is still the same process (pid + start ticks + boot
id) and carries the owner marker the record names in its environment (pids.owned): zero restarts; a
live pid without that marker (a forged or foreign record) is not adopted, never signalled (no group
kill, no exit path), and reported in the record's last_error; a record whose own process is gone is
settled (a running one through the one exit path, health.py `gone`: group, escapees, back-off; in
one-shot mode the plan starts it again), and an orphan of the model (tagged with its owner prefix but
not named by the record) is killed, so one name never has two live processes.
"""

from __future__ import annotations

import logging
import signal

from xgen_declare.names import cut, escape_controls
from xgen_declare.processes import pids
from xgen_declare.processes.history import Result
from xgen_declare.processes.core import Core
from xgen_declare.processes.health import LIVE
from xgen_declare.processes.state_store import OWNER_ENV, Record, StateStore
from xgen_declare.states import RUNNING_STATES, State

log = logging.getLogger("xgen_declare.processes.supervisor")


def foreign_words(rec: Record) -> str:
    marker = escape_controls(cut(rec.marker, 60)) if rec.marker else "none recorded"
    return (f"pid {rec.pid} of the record is alive but does not carry the record's owner marker "
            f"({OWNER_ENV}={marker}) in its environment: not adopted and never signalled (a forged or "
            "foreign record; the model is started again)")


def adopt_all(c: Core, store: StateStore) -> None:
    """Adopt every recorded process that is still the same process; zero restarts."""
    now = c.clock()
    for name, rec in store.load_all().items():
        p = c.new_proc(rec)
        c.procs[name] = p
        c.surges.settle_interrupted(p)  # never two processes of one model after a daemon restart
        alive = pids.matches(rec.pid, rec.start_ticks, rec.boot_id, c.proc_root)
        foreign = alive and not _owns(c, rec)
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
                c.set_state(p, State.STARTING, "adopted before it was ready")
                p.ready_deadline = now + rec.ready_timeout
        else:
            if st in RUNNING_STATES:
                # a process of this model that the record does not name (started while the state
                # dir could not be written) is an orphan holding the port: never two live
                pids.sweep(c.model_prefix(name), signal.SIGKILL)
            if st in LIVE and rec.pid is not None and not foreign and not c.one_shot:
                # this daemon noticed the end first: the one exit path (what is left of the group,
                # escapees, back-off: a run recorded Ready counts as a Ready run, log tail, record)
                if st != State.STARTING:
                    p.backoff.healthy()
                c.health.gone(p, "exited while no daemon was watching")
                continue
            if st in LIVE and not foreign:  # one-shot: the rest of its group too; the plan starts it (process gone)
                pids.kill_left_group(rec.pid, rec.start_ticks, rec.boot_id, c.proc_root)
            if rec.pid is not None:
                if foreign:
                    rec.last_error = foreign_words(rec)
                elif st in RUNNING_STATES and st != State.STOPPING:
                    rec.last_error = "process exited while no daemon was watching"
                rec.pid = None
            c.records.rollout_end(p, Result.FAILED if st == State.STARTING else Result.INTERRUPTED,
                                  "process gone while no daemon was watching")
            if st == State.STOPPING:
                c.set_state(p, State.STOPPED, "process gone")
            elif st == State.CRASH_LOOP_BACK_OFF:
                p.next_start_at = now
            c.records.save(rec)


def _owns(c: Core, rec: Record) -> bool:
    """The record's process is alive, the same process, and carries the record's owner marker."""
    return pids.owned(rec.pid, rec.start_ticks, rec.boot_id, rec.marker, c.model_prefix(rec.name), c.proc_root)


