"""Memory as the truth, the record its copy: `RecordWriter` writes a model's record and its rollout
history for the supervisor, and never lets a failed write stop supervision.

A record that cannot be written (state dir read-only or full) is remembered in `unsaved`; the failure
is kept in `store.write_failures` (path + errno, for the log, `status` and /metrics) and the record is
written again by `flush()` every FLUSH_PERIOD until it succeeds; a forgotten model whose record cannot
be removed, and a closed history entry that cannot be appended, are retried the same way.
Adoption of the records at start is adoption.py.
"""

from __future__ import annotations

import logging
from typing import Mapping

from xgen_declare.errors import StateNameError, StateWriteError
from xgen_declare.processes import history
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.processes.supervised import Proc

log = logging.getLogger("xgen_declare.processes.supervisor")

FLUSH_PERIOD = 1.0  # retry of records that could not be written


class RecordWriter:
    def __init__(self, store: StateStore):
        self.store = store
        self.unsaved: set[str] = set()     # records whose last write failed (memory is ahead of disk)
        self.undeleted: set[str] = set()   # forgotten models whose record could not be removed
        self.history_unsaved: dict[str, list[history.Entry]] = {}  # closed rollout entries not yet written

    @property
    def behind(self) -> bool:
        """Something is in memory that is not on disk yet."""
        return bool(self.unsaved or self.undeleted or self.history_unsaved)

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

    def forget(self, name: str) -> None:
        self.unsaved.discard(name)
        try:
            self.store.delete(name)
            self.undeleted.discard(name)
        except StateWriteError:
            self.undeleted.add(name)

    def declared(self, name: str) -> None:
        """`name` is declared again: its record is written, not removed."""
        self.undeleted.discard(name)

    def flush(self, procs: Mapping[str, Proc]) -> None:
        """Write again what could not be written (the state dir may be writable again)."""
        for name in sorted(self.history_unsaved):
            self.write_history(name)
        for name in sorted(self.unsaved):
            p = procs.get(name)
            if p is None:
                self.unsaved.discard(name)
            else:
                self.save(p.rec)  # each on its own: one failing record never holds back the others
        for name in sorted(self.undeleted):
            if name in procs:
                self.undeleted.discard(name)  # declared again: its record is written instead
            else:
                self.forget(name)

    # ---- rollout history -------------------------------------------------------------------------
    def close_history(self, name: str, entry: history.Entry, result: history.Result,
                      detail: str | None = None) -> history.Entry:
        """Close a history entry of model `name`; written at once, or by flush()."""
        closed = history.close_entry(entry, result, detail)
        self.history_unsaved.setdefault(name, []).append(closed)
        self.write_history(name)
        return closed

    def rollout_end(self, p: Proc, result: history.Result, detail: str | None = None) -> history.Entry | None:
        """Close the open history entry of `p` (if any) with `result`; the closed entry, or None."""
        entry = p.rec.rollout
        if entry is None:
            return None
        p.rec.rollout = None
        return self.close_history(p.rec.name, entry, result, detail)

    def write_history(self, name: str) -> None:
        pending = self.history_unsaved.get(name, [])
        while pending:
            try:
                self.store.append_history(name, pending[0].to_json())
            except (StateWriteError, StateNameError) as exc:
                log.debug("%s: history: %s", name, exc)
                return
            pending.pop(0)
        self.history_unsaved.pop(name, None)
