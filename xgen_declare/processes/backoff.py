"""Crash back-off, kubelet's rule: the first crash after a Ready run restarts at once, the next ones
wait a base delay doubling to a cap; the sequence resets after a long enough healthy run.

  at once   the first failure of a sequence whose run had become Ready (served) restarts with no delay,
            as kubelet restarts a container at once after its first termination and supervisord always
            does: a model that served for hours is back in a second, not after `base`;
  doubling  every further failure in the sequence waits base, 2*base, 4*base ... up to `cap`; a run that
            never became Ready (a crash during start) waits from the first failure on (no restart at once
            for a start that keeps failing);
  reset     a run that stayed Ready for `reset_after` seconds before it failed starts a new sequence (so
            its failure restarts at once again).

The sequence belongs to one spec (kubelet keys its back-off by container spec): a failure of a
different spec (`key`, the spec hash) starts again. A run counts as healthy from `healthy()` (Ready)
until the failure that ends it.

Time comes from an injectable monotonic clock, so a wall-clock jump changes nothing and tests use a
fake clock.
"""

from __future__ import annotations

import time
from typing import Callable


class Backoff:
    def __init__(self, base: float = 10.0, cap: float = 300.0, reset_after: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.base, self.cap, self.reset_after, self.clock = base, cap, reset_after, clock
        self.failures = 0           # failures of this sequence that waited (the exponent)
        self.restarted_at_once = False  # this sequence's restart at once is used
        self.key: str | None = None
        self._healthy_since: float | None = None

    def healthy(self) -> None:
        """The model became Ready (call once per Ready transition)."""
        self._healthy_since = self.clock()

    def unhealthy(self) -> None:
        """Forget the current healthy run (it does not count towards a reset)."""
        self._healthy_since = None

    def next_delay(self, key: str | None = None) -> float:
        """The delay before the next restart after a failure of spec `key`; advances the sequence."""
        now = self.clock()
        if key != self.key:  # the run that just ended (Ready or not) is this spec's: it still counts
            self.failures, self.restarted_at_once, self.key = 0, False, key
        served = self._healthy_since is not None
        if served and now - self._healthy_since >= self.reset_after:  # type: ignore[operator]
            self.failures, self.restarted_at_once = 0, False
        self._healthy_since = None
        if served and self.failures == 0 and not self.restarted_at_once:
            self.restarted_at_once = True
            return 0.0
        delay = min(self.base * (2 ** self.failures), self.cap)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures, self.key, self.restarted_at_once = 0, None, False
        self._healthy_since = None
