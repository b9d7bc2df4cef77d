"""Per-model request activity, shared by the router (server thread) and the control loop. Thread-safe.

`in_flight` counts requests from arrival to the end of the forwarded answer, waiting ones included:
the control loop never stops (idle timer, eviction) a model whose count is not zero. `waiting` counts
the requests held while the model starts (bounded: beyond `queue_limit` the router answers 429).
`last_used` is when a request last arrived or finished (the idle timer and the LRU order read it).
`at(name, port)` counts the requests forwarded to one process of a model (its port) and not finished:
a surge drains the old process by it while the new one already takes new requests; `try_bind` caps
their sum per model (router.connections_per_model, the size of the model's connection pool).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

__all__ = ["Tracker"]


class Tracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._waiting: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._upstream: dict[tuple[str, int], int] = {}

    def begin(self, name: str) -> None:
        with self._lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
            self._last[name] = self.clock()

    def end(self, name: str) -> None:
        with self._lock:
            self._in_flight[name] = max(self._in_flight.get(name, 0) - 1, 0)
            self._last[name] = self.clock()

    def bind(self, name: str, port: int) -> None:
        """A request of `name` goes to the process on `port` (count it until `unbind`)."""
        with self._lock:
            self._upstream[(name, port)] = self._upstream.get((name, port), 0) + 1

    def try_bind(self, name: str, port: int, limit: int) -> bool:
        """`bind`, unless `limit` requests of `name` are bound already, to any of its processes (then False)."""
        with self._lock:
            if sum(n for (model, _), n in self._upstream.items() if model == name) >= limit:
                return False
            self._upstream[(name, port)] = self._upstream.get((name, port), 0) + 1
            return True

    def unbind(self, name: str, port: int) -> None:
        with self._lock:
            left = self._upstream.get((name, port), 0) - 1
            if left > 0:
                self._upstream[(name, port)] = left
            else:
                self._upstream.pop((name, port), None)

    def at(self, name: str, port: int) -> int:
        with self._lock:
            return self._upstream.get((name, port), 0)

    def try_wait(self, name: str, limit: int) -> bool:
        """Count one more waiting request, unless `limit` already wait (then False)."""
        with self._lock:
            if self._waiting.get(name, 0) >= limit:
                return False
            self._waiting[name] = self._waiting.get(name, 0) + 1
            return True

    def done_waiting(self, name: str) -> None:
        with self._lock:
            self._waiting[name] = max(self._waiting.get(name, 0) - 1, 0)

    def touch(self, name: str) -> None:
        with self._lock:
            self._last[name] = self.clock()

    def in_flight(self, name: str) -> int:
        with self._lock:
            return self._in_flight.get(name, 0)

    def active(self, name: str) -> int:
        """Requests forwarded (or about to be) and not finished: in flight minus those waiting for a start.
        A stop drains these (supervisor.in_flight)."""
        with self._lock:
            return max(self._in_flight.get(name, 0) - self._waiting.get(name, 0), 0)

    def waiting(self, name: str) -> int:
        with self._lock:
            return self._waiting.get(name, 0)

    def idle_seconds(self, name: str) -> float:
        """Seconds since the last request arrived or ended (first asked: counts from now)."""
        with self._lock:
            now = self.clock()
            return now - self._last.setdefault(name, now)

    def lru(self, names: Iterable[str]) -> list[str]:
        """Least recently used first (never used: first of all, by name)."""
        with self._lock:
            return sorted(names, key=lambda n: (self._last.get(n, float("-inf")), n))
