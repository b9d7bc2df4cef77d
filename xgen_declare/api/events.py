"""The event bus behind `GET /api/management/events` (Server-Sent Events) and `xgen-declare events`.

Sources, all on the control loop's thread: `states.transition` (every state change, OLD -> NEW) and
the daemon's pass hook (manifest problems appearing or clearing). Event types:

    state             {model, old, new, reason, restarts, pid}
    restart           {model, restarts}              a start that replaces a process (counted)
    error             {model, state, error}          CrashLoopBackOff / Failed / Blocked / Unhealthy
    manifest_invalid  {model, error}                 a manifest became invalid (or its error changed)
    manifest_valid    {model}                        ... and is valid again

Every event has an increasing `id` (the SSE id; send Last-Event-ID or ?since=ID to resume from the
in-memory ring buffer of the last RING events) and `time` (Unix seconds).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from xgen_declare.states import State
from xgen_declare.http.security import Scrubber

RING = 1000
ERROR_STATES = frozenset({State.CRASH_LOOP_BACK_OFF, State.FAILED, State.BLOCKED, State.UNHEALTHY})


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    time: float
    data: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"id": self.id, "type": self.type, "time": round(self.time, 3), **self.data}

    def sse(self) -> str:
        return f"id: {self.id}\nevent: {self.type}\ndata: {json.dumps(self.to_json())}\n\n"


class EventBus:
    """Thread-safe publish; async readers wait on their own loop without polling."""

    def __init__(self, size: int = RING):
        self._lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=size)
        self._next = 1
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def last_id(self) -> int:
        return self._next - 1

    def publish(self, type_: str, **data) -> Event:
        with self._lock:
            ev = Event(self._next, type_, time.time(), data)
            self._next += 1
            self._events.append(ev)
            waiters = list(self._waiters)
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # that reader's loop is closed
                pass
        return ev

    def since(self, last_id: int) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.id > last_id]

    async def wait(self, last_id: int, timeout: float) -> list[Event]:
        """Events after last_id, waiting up to `timeout` seconds for the first one."""
        found = self.since(last_id)
        if found:
            return found
        key = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(key)
        try:
            found = self.since(last_id)
            if not found:
                try:
                    await asyncio.wait_for(key[1].wait(), timeout)
                except asyncio.TimeoutError:
                    return []
                found = self.since(last_id)
            return found
        finally:
            with self._lock:
                self._waiters.discard(key)


class EventFeeder:
    """Turns state transitions and reconcile passes into events."""

    def __init__(self, bus: EventBus, scrub: Scrubber):
        self.bus, self.scrub = bus, scrub
        self._restarts: dict[str, int] = {}
        self._invalid: dict[str, str] = {}

    def on_transition(self, name: str, old: State, new: State, reason: str, detail: dict) -> None:
        restarts = detail.get("restarts")
        self.bus.publish("state", model=name, old=old.value, new=new.value, reason=self.scrub.text(reason),
                         restarts=restarts, pid=detail.get("pid"))
        before = self._restarts.get(name)
        if isinstance(restarts, int):
            if new == State.STARTING and before is not None and restarts > before:
                self.bus.publish("restart", model=name, restarts=restarts)
            self._restarts[name] = restarts
        if new in ERROR_STATES:
            error = detail.get("last_error") or reason
            self.bus.publish("error", model=name, state=new.value, error=self.scrub.text(error))

    def on_pass(self, result, seconds: float) -> None:
        now: dict[str, str] = {a.name: a.manifest_error for a in result.plan.actions if a.manifest_error}
        for name, error in sorted(now.items()):
            if self._invalid.get(name) != error:
                self.bus.publish("manifest_invalid", model=name, error=self.scrub.text(error))
        for name in sorted(set(self._invalid) - set(now)):
            self.bus.publish("manifest_valid", model=name)
        self._invalid = now
