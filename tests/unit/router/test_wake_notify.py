"""A request waiting for its model to start is woken by the control loop's step in which the model
became Ready, not by its next poll (bench/cold_start.py: the 50 ms poll was ~40 ms of every cold
start). The poll stays as the fallback."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from xgen_declare.router import service
from xgen_declare.processes.view import ModelView
from xgen_declare.router.service import Router
from xgen_declare.router.table import Route
from xgen_declare.states import State


class FakeDoor:
    """The daemon's door (reconciler/door.py) as far as this test needs it: published views, tick hooks."""

    def __init__(self, view: ModelView):
        self.views = {view.name: view}
        self.tick_hooks: list = []
        self.pass_hooks: list = []

    def model(self, name):
        return self.views.get(name)

    live = model

    def add_pass_hook(self, fn):
        self.pass_hooks.append(fn)

    def remove_pass_hook(self, fn):
        self.pass_hooks.remove(fn)

    def add_tick_hook(self, fn):
        self.tick_hooks.append(fn)

    def remove_tick_hook(self, fn):
        self.tick_hooks.remove(fn)

    def register_router(self, in_flight, in_flight_at):
        pass

    def unregister_router(self):
        pass


def fake_ctx():
    view = ModelView(name="m", state=State.STARTING, port=8123, host="127.0.0.1", held=False, draining=False,
                     last_error=None, manifest_error=None, spec_hash="h")
    daemon = FakeDoor(view)
    return SimpleNamespace(daemon=daemon, metrics=SimpleNamespace(registry=CollectorRegistry()), bus=None), view


def test_waiting_request_wakes_on_the_tick_that_saw_ready(monkeypatch):
    monkeypatch.setattr(service, "POLL", 30.0)  # only a notification can answer within the test's bound
    ctx, view = fake_ctx()
    router = Router(ctx)
    router.attach()
    route = Route("m", ready_timeout=60)

    def control_loop():
        time.sleep(0.3)
        ctx.daemon.views["m"] = replace(view, state=State.READY)  # published whole, as the supervisor does
        for hook in list(ctx.daemon.tick_hooks):
            hook(ctx.daemon)

    async def main():
        t0 = time.monotonic()  # before the thread starts its 0.3 s sleep
        threading.Thread(target=control_loop, daemon=True).start()
        url = await asyncio.wait_for(router.ready(route, router.clock()), 10)
        return url, time.monotonic() - t0

    url, waited = asyncio.run(main())
    assert url == "http://127.0.0.1:8123"
    assert 0.3 <= waited < 5
    router.detach()
    assert ctx.daemon.tick_hooks == []
