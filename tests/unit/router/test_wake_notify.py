"""A request waiting for its model to start is woken by the control loop's step in which the model
became Ready, not by its next poll (bench/cold_start.py: the 50 ms poll was ~40 ms of every cold
start). The poll stays as the fallback."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from xgen_declare.router import service
from xgen_declare.processes.core import Hooks
from xgen_declare.router.service import Router
from xgen_declare.router.table import Route
from xgen_declare.states import State


def fake_ctx():
    proc = SimpleNamespace(state=State.STARTING, drain_deadline=None, rec=SimpleNamespace(port=8123, host="127.0.0.1", held=False,
                                                                     last_error=None, manifest_error=None))
    daemon = SimpleNamespace(sup=SimpleNamespace(procs={"m": proc}, hooks=Hooks()), pass_hooks=[], tick_hooks=[],
                             wake=threading.Event())
    return SimpleNamespace(daemon=daemon, metrics=SimpleNamespace(registry=CollectorRegistry()), bus=None), proc


def test_waiting_request_wakes_on_the_tick_that_saw_ready(monkeypatch):
    monkeypatch.setattr(service, "POLL", 30.0)  # only a notification can answer within the test's bound
    ctx, proc = fake_ctx()
    router = Router(ctx)
    router.attach()
    route = Route("m", ready_timeout=60)

    def control_loop():
        time.sleep(0.3)
        proc.state = State.READY
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
