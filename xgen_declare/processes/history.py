"""Rollout history: one entry per start of a new spec of a model, kept in STATE_DIR/history/NAME.json.

An entry opens when the supervisor spawns a spec whose hash differs from the one the model last ran
(the first start of a model too: `from` is None) and closes with its result:

    succeeded    the new spec became Ready
    failed       it exited, crashed or was not Ready within ready_timeout before it was Ready
    interrupted  it was stopped before it was Ready (another edit, `down`, manifest removed, ...)
    updated in place  (from == to) fields only xgen-declare reads changed; the process was not touched
    rolled back  (from = the failed spec) the last good spec was started again and is Ready

The open entry lives in the model's record (`Record.rollout`, an `Entry`: its JSON is the entry's
shape in the file, so a daemon that is restarted (even `kill -9`) closes what the previous one opened). The file keeps the last HISTORY_KEEP entries
(state_store), oldest first; `xgen-declare history NAME` shows them newest first.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass
from typing import Any, Mapping

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


@dataclass(frozen=True)
class Entry:
    """One start of a new spec: written as {"started_at", "from", "to", "file", "sha256", "commit", "dirty",
    "result", "detail", "ended_at"} (the provenance flat beside the hashes), in the record while open and
    in history/NAME.json once closed."""

    started_at: float | None
    from_hash: str | None            # "from": the spec hash it replaced (None: the model's first start)
    to_hash: str | None              # "to"
    provenance: Provenance = Provenance()
    result: Result | None = None     # None while open
    detail: str | None = None
    ended_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "from": self.from_hash, "to": self.to_hash,
                **self.provenance.to_json(), "result": self.result.value if self.result is not None else None,
                "detail": self.detail, "ended_at": self.ended_at}

    @classmethod
    def from_json(cls, data: object) -> "Entry | None":
        """The open entry a record holds; None when it holds none. Tolerant like settings.py: a value of the
        wrong type reads as unknown, an unknown result as open, so an old record is still adopted."""
        if not isinstance(data, Mapping) or not data:  # {}: none either
            return None
        try:
            result: Result | None = Result(data.get("result")) if data.get("result") is not None else None
        except ValueError:
            result = None
        detail = data.get("detail")
        return cls(started_at=_time(data.get("started_at")), from_hash=_hash(data.get("from")),
                   to_hash=_hash(data.get("to")), provenance=Provenance.from_json(data) or Provenance(),
                   result=result, detail=detail if isinstance(detail, str) else None,
                   ended_at=_time(data.get("ended_at")))


def _time(value: object) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _hash(value: object) -> str | None:
    return value if isinstance(value, str) else None


def open_entry(old_hash: str | None, new_hash: str, prov: Provenance, now: float | None = None) -> Entry:
    return Entry(time.time() if now is None else now, old_hash, new_hash, prov)


def close_entry(entry: Entry, result: Result, detail: str | None = None, now: float | None = None) -> Entry:
    """`detail`: one line (an Ending's `what`; the log stays in logs/)."""
    first_line = detail.splitlines()[0] if detail else None
    return dataclasses.replace(entry, result=result, detail=first_line, ended_at=time.time() if now is None else now)


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
