"""The poll of a git source, as the daemon will own it: `poll_once()` syncs now and says what happened as
a `PollResult` (unchanged / switched old -> new / refused with a `Refusal` / pinned); `due()` and
`seconds_until_due()` say when the next poll is, every `interval`, backing off after failures of the
remote (fetch failed, timeout): interval x 2, x 4, ... up to `max_backoff`, back to `interval` after any
answer. A refused commit is not a failure of the remote: the next poll comes at `interval`.

The last good commit stays current on every failure (GitSource). Each attempt (time, outcome, commits,
reason, error, problems) is written to STATE/source/last_poll for `source status` and read back by
`last_recorded()`. The clock and the wall clock are injectable.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xgen_declare.errors import Problem
from xgen_declare.sources import state
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.results import Refusal, SyncResult

__all__ = ["Outcome", "PollResult", "Poller", "last_recorded"]

RECORD = "last_poll"


class Outcome(str, enum.Enum):
    UNCHANGED = "unchanged"  # the ref names the current commit
    SWITCHED = "switched"    # `current` moved from `old` to `new`
    REFUSED = "refused"      # `fetched` (or nothing) is not applied: `reason`, `error`; `old` stays current
    PINNED = "pinned"        # a pin holds `current`; the ref was fetched (or not: `error`) and not applied


@dataclass(frozen=True)
class PollResult:
    outcome: Outcome
    old: str | None              # current when the poll began
    new: str | None              # current after it (== old unless switched, or a pin moved it)
    fetched: str | None          # what the ref named on the remote (None: nothing fetched)
    reason: Refusal | None = None
    error: str | None = None
    problems: tuple[Problem, ...] = ()
    signature: str | None = None  # `principal (SHA256:...)` when source.verify checked the commit
    pinned: str | None = None
    at: float = 0.0              # wall-clock time of the attempt
    failures: int = 0            # failures of the remote in a row (0 after any answer)
    next_in: float = 0.0         # seconds to the next poll
    manifests: Path | None = None

    def to_json(self) -> dict:
        return {"outcome": self.outcome.value, "old": self.old, "new": self.new, "fetched": self.fetched,
                "reason": self.reason.value if self.reason else None, "error": self.error,
                "problems": [p.to_json() for p in self.problems], "signature": self.signature,
                "pinned": self.pinned, "at": self.at, "failures": self.failures, "next_in": self.next_in}


def outcome_of(res: SyncResult) -> Outcome:
    if res.pinned is not None:
        return Outcome.PINNED
    if res.error is not None:
        return Outcome.REFUSED
    return Outcome.SWITCHED if res.changed else Outcome.UNCHANGED


class Poller:
    def __init__(self, source: GitSource, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, max_backoff: float = 300.0):
        self.source = source
        self.clock, self.wall = clock, wall
        self.max_backoff = max(max_backoff, source.spec.interval)
        self.failures = 0
        self.last: PollResult | None = None
        self.record_error: str | None = None  # why STATE/source/last_poll could not be written, if it could not
        self._next_at: float | None = None  # None: due now
        self._lock = threading.Lock()  # the timer and a webhook may call poll_once at once

    @property
    def interval(self) -> float:
        return self.source.spec.interval

    def delay(self) -> float:
        """Seconds between this poll and the next: the interval, doubled per failure of the remote, capped."""
        if self.failures == 0:
            return self.interval
        return min(self.interval * 2 ** self.failures, self.max_backoff)

    def due(self) -> bool:
        return self._next_at is None or self.clock() >= self._next_at

    def seconds_until_due(self) -> float:
        return 0.0 if self._next_at is None else max(0.0, self._next_at - self.clock())

    def poll_if_due(self) -> PollResult | None:
        return self.poll_once() if self.due() else None

    def poll_once(self) -> PollResult:
        """Sync now (a webhook or `xgen-declare sync` calls this out of turn), then schedule the next poll."""
        with self._lock:
            return self._poll()

    def _poll(self) -> PollResult:
        at = self.wall()
        res = self.source.sync()
        self.failures = self.failures + 1 if res.reason is not None and res.reason.transient else 0
        delay = self.delay()
        self._next_at = self.clock() + delay
        result = PollResult(outcome_of(res), res.before, res.commit, res.fetched, res.reason, res.error,
                            res.problems, res.signature, res.pinned, at, self.failures, delay, res.manifests)
        self.last = result
        try:
            state.write_json(self.source.root / RECORD, result.to_json())
            self.record_error = None
        except state.StateFileError as exc:
            self.record_error = str(exc)
        return result


def last_recorded(source: GitSource) -> dict | None:
    """The last poll's record (PollResult.to_json()) from STATE/source/last_poll; None before the first;
    StateFileError when the file is damaged."""
    return state.read_json(source.root / RECORD)
