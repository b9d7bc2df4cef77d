"""What the management API's routes (and the router mounted beside them) share: the daemon, the token,
the event bus, metrics, the path scrubber and the router itself.

The control loop owns every model: routes read snapshots (the state records on disk, written
atomically by the loop; the loop's published `snapshot`, from which `ctx.preview()` computes plans in
the server's threads) and hand work to the loop with `ctx.call(fn)` (`Daemon.submit`), never touching
the supervisor from the server's thread. Reads never queue on the loop; a write finding its inbox full
gets 503 "the daemon is busy" with Retry-After.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from xgen_declare import states
from xgen_declare.api.events import EventBus, EventFeeder
from xgen_declare.api.metrics import Metrics
from xgen_declare.config import Api
from xgen_declare.errors import LoopBusy
from xgen_declare.http.security import MAX_BODY, ApiProblem, Scrubber
from xgen_declare.reconciler.door import Control, Door
from xgen_declare.router.service import Router

T = TypeVar("T")

CALL_TIMEOUT = 120.0
BUSY_RETRY_AFTER = 1  # seconds, in the 503 of a full inbox


@dataclass
class ApiContext:
    daemon: Door                         # the control loop's door (reconciler/door.py)
    settings: Api
    bind_host: str
    token: str | None
    bus: EventBus = field(default_factory=EventBus)
    closing: threading.Event = field(default_factory=threading.Event)
    max_body: int = MAX_BODY
    router: Router | None = None         # the /v1 router, once mounted (router.mount_router)

    def __post_init__(self) -> None:
        env = self.daemon.env
        self.scrub = Scrubber([(p, "") for p in env.paths] + [(str(env.store.root), "$STATE_DIR/")])
        self.feeder = EventFeeder(self.bus, self.scrub)
        self.metrics = Metrics(env.store, env.proc_root, lambda: self.daemon.inventory, lambda: self.daemon.source)
        self.write_lock = asyncio.Lock()
        self._attached = False

    @property
    def attached(self) -> bool:
        """Hooked into the daemon (its state listeners, pass hooks and rollout events)."""
        return self._attached

    @property
    def env(self):
        return self.daemon.env

    @property
    def root(self) -> str:
        """The manifests dir that holds api/ (the first DIR given to `run`)."""
        return self.env.paths[0]

    def attach(self) -> None:
        if not self._attached:
            states.add_listener(self.feeder.on_transition)
            states.add_listener(self.metrics.on_transition)
            self.daemon.add_pass_hook(self.feeder.on_pass)
            self.daemon.add_pass_hook(self.metrics.on_pass)
            self.daemon.add_event_sink(self.bus.publish)  # rollout events (supervisor.py)
            if self.daemon.source is not None:  # source_switched, source_refused (gitpoll.py)
                self.daemon.source.add_sink(self.bus.publish)
            self._attached = True
            if self.router is not None:
                self.router.attach()

    def detach(self) -> None:
        self.closing.set()
        if self._attached:
            states.remove_listener(self.feeder.on_transition)
            states.remove_listener(self.metrics.on_transition)
            self.daemon.remove_pass_hook(self.feeder.on_pass)
            self.daemon.remove_pass_hook(self.metrics.on_pass)
            self.daemon.remove_event_sink(self.bus.publish)
            if self.daemon.source is not None:
                self.daemon.source.remove_sink(self.bus.publish)
            if self.router is not None:
                self.router.detach()
            self._attached = False

    def preview(self):
        """(Pass, LoopSnapshot): the plan a pass would make now, from the loop's last snapshot. Blocking:
        call it in a worker thread (`to_thread.run_sync(ctx.preview)`); it never waits for the loop."""
        return self.daemon.preview()

    async def call(self, fn: Callable[[Control], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run fn(control) on the control loop and await its result (503 when its inbox is full)."""
        try:
            fut = self.daemon.submit(fn)
        except LoopBusy as exc:
            raise ApiProblem(503, str(exc), retry_after=BUSY_RETRY_AFTER) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            fut.cancel()
            raise ApiProblem(503, f"the control loop did not answer within {timeout:g}s") from None
