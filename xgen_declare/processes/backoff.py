"""Crash back-off, kubelet's rule: base delay doubling to a cap, reset after a long enough healthy run.

The sequence belongs to one spec (kubelet keys its back-off by container spec): a failure of a
different spec (`key`, the spec hash) starts again at the base delay. A run counts as healthy from
`healthy()` (Ready) until the failure that ends it.

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
        self.failures = 0
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
        if key != self.key:
            self.failures, self.key = 0, key
        if self._healthy_since is not None and now - self._healthy_since >= self.reset_after:
            self.failures = 0
        self._healthy_since = None
        delay = min(self.base * (2 ** self.failures), self.cap)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures, self.key = 0, None
        self._healthy_since = None
