"""Finding 5 (#21): a flood of unauthenticated GET /plan (and model detail) never holds the control loop:
a backend killed during the flood is restarted within its back-off + 5 s. Loopback only, bounded in
count and time."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import httpx

from xgen_declare.testing.harness import free_port

from .conftest import FAST
from .test_api import P, wait_up

CLIENTS = 64         # concurrent readers
FLOOD_LIMIT = 20.0   # seconds the flood may last at most
CLIENT_TIMEOUT = 1.0  # a reader gives up and asks again (its request may still wait in the daemon)


def flood(base: str, stop: threading.Event, counts: dict) -> None:
    async def reader(client: httpx.AsyncClient, i: int) -> None:
        path = P + "/plan" if i % 2 else P + "/models/m/detail"
        while not stop.is_set():
            try:
                r = await client.get(base + path, timeout=CLIENT_TIMEOUT)
                counts[r.status_code] = counts.get(r.status_code, 0) + 1
            except httpx.HTTPError:
                counts["timeout"] = counts.get("timeout", 0) + 1

    async def main() -> None:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(limits=limits) as client:
            await asyncio.wait_for(asyncio.gather(*(reader(client, i) for i in range(CLIENTS))), FLOOD_LIMIT)

    try:
        asyncio.run(main())
    except asyncio.TimeoutError:
        pass


def test_a_killed_backend_restarts_on_time_during_a_read_flood(host):
    host.write("m")
    port = free_port()
    host.start_daemon("--api", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_up(host, base)
    pid = host.wait_ready("m")["m"]["pid"]
    stop, counts = threading.Event(), {}
    flooder = threading.Thread(target=flood, args=(base, stop, counts), daemon=True)
    flooder.start()
    try:
        time.sleep(1.0)  # the flood is under way before the kill
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        bound = FAST["backoff_base"] + 5
        st = host.wait(lambda s: s["m"]["state"] == "Ready" and s["m"]["pid"] not in (None, pid), timeout=bound + 10,
                       what="m restarted")
        took = time.monotonic() - killed
    finally:
        stop.set()
        flooder.join(FLOOD_LIMIT + 5)
    assert not flooder.is_alive()
    assert st["m"]["restarts"] == 1
    assert took <= bound, f"restarted after {took:.1f}s (bound {bound}s); answers: {counts}"
    assert counts.get(200, 0) > CLIENTS, counts  # the readers were answered meanwhile
