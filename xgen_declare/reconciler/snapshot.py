"""What readers outside the control loop see of it: a frozen snapshot of the loop's inputs, and the
plan a pass would make now, computed from that snapshot in the reader's thread, never on the loop.

The loop publishes a `LoopSnapshot` after each step (`Daemon.snapshot`: one attribute, replaced whole,
so a reader never sees half of one). `Previewer` turns it into the `Pass` a pass would compute now (the
API's GET /plan and model detail): one computation at a time, reused while the snapshot is the same
and younger than `fresh` seconds, so a flood of readers costs one plan per second at most and never
delays a stop, a probe or a restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from xgen_declare.config import Config
from xgen_declare.inventory.model import Inventory
from xgen_declare.processes.spec import Seen
from xgen_declare.reconciler.apply import Pass, compute

FRESH = 1.0  # seconds a preview is reused for the same snapshot (a manifest edit shows after at most this)


@dataclass(frozen=True)
class LoopSnapshot:
    version: int                      # changes whenever any other field does
    paths: tuple[str, ...]
    config: Config
    inventory: Inventory | None       # the last full resync's (None before the first pass)
    seen: Mapping[str, Seen]          # the supervisor's models, as the planner sees them
    awake: frozenset[str]             # on-demand models wanted running

    @property
    def known(self) -> frozenset[str]:
        """The models the supervisor knows (declared or not)."""
        return frozenset(self.seen)

    def same_inputs(self, other: "LoopSnapshot | None") -> bool:
        return (other is not None and other.paths == self.paths and other.config is self.config
                and other.inventory is self.inventory and other.awake == self.awake and other.seen == self.seen)


class Previewer:
    """`get()`: the `Pass` a pass would compute now, from `source()` (the loop's last snapshot).
    Thread-safe; callers block on one another instead of computing the same plan twice."""

    def __init__(self, source: Callable[[], LoopSnapshot | None], inventory: Callable[[], Inventory], *,
                 fresh: float = FRESH, clock: Callable[[], float] = time.monotonic,
                 compute_fn: Callable[..., Pass] = compute):
        self.source, self.inventory, self.fresh, self.clock = source, inventory, fresh, clock
        self.compute = compute_fn
        self._lock = threading.Lock()
        self._cached: tuple[int, float, Pass, LoopSnapshot] | None = None
        self.computed = 0  # how many plans were computed (tests, metrics)

    def get(self) -> tuple[Pass, LoopSnapshot]:
        with self._lock:
            snap = self.source()
            if snap is None:
                raise RuntimeError("the control loop has not published a snapshot yet")
            now = self.clock()
            cached = self._cached
            if cached is not None and cached[0] == snap.version and now - cached[1] < self.fresh:
                return cached[2], cached[3]
            inventory = snap.inventory if snap.inventory is not None else self.inventory()
            result = self.compute(list(snap.paths), snap.config, inventory, snap.seen, awake=set(snap.awake))
            self.computed += 1
            self._cached = (snap.version, now, result, snap)
            return result, snap
