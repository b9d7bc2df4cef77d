"""Rollout history: one entry per start of a new spec of a model, kept in STATE_DIR/history/NAME.json.

An entry opens when the supervisor spawns a spec whose hash differs from the one the model last ran
(the first start of a model too: `from` is None) and closes with its result:

    succeeded    the new spec became Ready
    failed       it exited, crashed or was not Ready within ready_timeout before it was Ready
    interrupted  it was stopped before it was Ready (another edit, `down`, manifest removed, ...)
    updated in place  (from == to) fields only xgen-declare reads changed; the process was not touched
    rolled back  (from = the failed spec) the last good spec was started again and is Ready

The open entry lives in the model's record (`Record.rollout`), so a daemon that is restarted (even
`kill -9`) closes what the previous one opened. The file keeps the last HISTORY_KEEP entries
(state_store), oldest first; `xgen-declare history NAME` shows them newest first.
"""

from __future__ import annotations

import time

import enum

from xgen_declare.processes.provenance import Provenance


class Result(str, enum.Enum):
    """How a history entry closed; written as its value (the JSON shape is unchanged)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    ROLLED_BACK = "rolled back"            # the last good spec, started again after a failed rollout, is Ready
    UPDATED_IN_PLACE = "updated in place"  # fields only xgen-declare reads changed (rollout.py): same process

    def __str__(self) -> str:
        return self.value


def open_entry(old_hash: str | None, new_hash: str, prov: Provenance, now: float | None = None) -> dict:
    return {"started_at": time.time() if now is None else now, "from": old_hash, "to": new_hash,
            "file": prov.file, "sha256": prov.sha256, "commit": prov.commit, "dirty": prov.dirty,
            "result": None, "detail": None, "ended_at": None}


def close_entry(entry: dict, result: Result, detail: str | None = None, now: float | None = None) -> dict:
    """`detail`: one line (an Ending's `what`; the log stays in logs/)."""
    first_line = detail.splitlines()[0] if detail else None
    return {**entry, "result": result.value, "detail": first_line, "ended_at": time.time() if now is None else now}


def format_time(ts: object) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def table_rows(entries: list[dict]) -> list[list]:
    """Newest first: TIME, FROM, TO, COMMIT, RESULT, DETAIL."""
    rows = []
    for e in reversed(entries):
        commit = e.get("commit")
        commit_text = "-" if not commit else str(commit)[:12] + (" (dirty)" if e.get("dirty") else "")
        rows.append([format_time(e.get("started_at")), e.get("from") or "-", e.get("to") or "-", commit_text,
                     e.get("result") or "in progress", e.get("detail") or ""])
    return rows
