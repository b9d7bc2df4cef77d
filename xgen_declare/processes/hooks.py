"""One registry of callbacks for the hooks and event sinks the layers above install: the supervisor's
event sinks (core.py `Hooks`), the daemon's pass and tick hooks (reconciler/daemon.py) and the git
source's event sinks (reconciler/gitpoll.py).

Any thread may `add` or `remove` (the API adds its sinks from its own thread while the loop calls them);
a callable is registered once however often it is added, and removing one that is not there is no
error. `snapshot()` and `call()` run over a copy taken under the lock, so a hook that removes itself (or
adds another) while it runs changes the next round, not this one. `call()` runs every hook even when one
raises: each failure is logged with its traceback as "WHAT failed" (on the owner's logger). The daemon's
tick hooks are run one by one through its own guard instead (`snapshot()`: slow hooks and repeated
failures are logged the way the loop logs its other parts).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry"]

log = logging.getLogger("xgen_declare.processes.hooks")

F = TypeVar("F", bound=Callable[..., object])


class Registry(Generic[F]):
    """Callables of one kind, added and removed from any thread, called over a snapshot."""

    def __init__(self, what: str, logger: logging.Logger | None = None):
        self.what = what  # "pass hook", "source event sink": how a failure is logged
        self._log = logger or log
        self._lock = threading.Lock()
        self._fns: tuple[F, ...] = ()

    def add(self, fn: F) -> None:
        with self._lock:
            if fn not in self._fns:
                self._fns = self._fns + (fn,)

    def remove(self, fn: F) -> None:
        with self._lock:
            self._fns = tuple(f for f in self._fns if f != fn)

    def snapshot(self) -> tuple[F, ...]:
        """The hooks registered now, in the order they were added (a copy: safe to iterate while they change)."""
        with self._lock:
            return self._fns

    def __len__(self) -> int:
        return len(self.snapshot())

    def __contains__(self, fn: object) -> bool:
        return fn in self.snapshot()

    def call(self, *args: object, **kwargs: object) -> None:
        """fn(*args, **kwargs) for each hook of the snapshot; one that raises does not stop the others."""
        for fn in self.snapshot():
            try:
                fn(*args, **kwargs)
            except Exception:
                self._log.exception("%s failed", self.what)
