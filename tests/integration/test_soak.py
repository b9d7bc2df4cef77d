"""Soak (issue 21, "Done when"): the three ways a client used to stall the daemon, all at once against one
real daemon on loopback, bounded in count and time:
* a slowloris: 1 100 connections dripping one header byte a second, the daemon's open-files limit set to
  1 024 (soft and hard, on the running daemon, as on the host of finding 4);
* a flood of unauthenticated GET /plan and model-detail reads (finding 5);
* 100 streams held open to one model through the router (finding 6);
and meanwhile another model answers through the router, an ordinary API read answers, and a backend
killed with SIGKILL is Ready again within its back-off + 5 s. Each piece has its own focused test
(test_api_load, test_api_flood, test_router_limits); this one checks that they hold together."""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
import time

import httpx

from xgen_declare.testing.harness import free_port
from xgen_declare.testing.slowloris import SlowClient, drip_all

from .conftest import FAST, manifest
from .test_api import P, wait_up
from .test_api_flood import FLOOD_LIMIT, flood
from .test_api_load import SLOW

STREAMS = 100


def hold_streams(base: str, stop: threading.Event, counts: dict, lock: threading.Lock) -> None:
    """One client that keeps a stream to `streamer` open until `stop` (and opens it again if it ends)."""
    body = {"model": "streamer", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    while not stop.is_set():
        try:
            with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=10) as r:
                code = r.status_code
                for _ in r.iter_lines():
                    if stop.is_set():
                        break
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        with lock:
            counts[code] = counts.get(code, 0) + 1
        if code != 200:
            stop.wait(0.5)


def test_slowloris_plan_flood_and_100_streams_at_once_while_a_killed_backend_restarts(host):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * SLOW + 4 * STREAMS:  # this test process holds the attack's sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    cfg = json.loads((host.manifests / "xgen-declare.yaml").read_text())
    host.write_config({**cfg, "api": {"header_timeout": 3}})
    host.write("streamer", manifest("streamer", env={"FAKE_MODE": "chunks=1000,chunk_delay=0.05"}))
    host.write("other", manifest("other"))
    host.write("m", manifest("m"))  # the flood reads m's detail; m is the one killed
    port = free_port()
    daemon = host.start_daemon("--api", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_up(host, base)
    pid = host.wait_ready("streamer", "other", "m")["m"]["pid"]
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (1024, 1024))

    stop, lock = threading.Event(), threading.Lock()
    flooded: dict = {}
    streamed: dict = {}
    slow = [SlowClient(port) for _ in range(SLOW)]
    workers = [threading.Thread(target=flood, args=(base, stop, flooded), daemon=True)]
    workers += [threading.Thread(target=hold_streams, args=(base, stop, streamed, lock), daemon=True)
                for _ in range(STREAMS)]
    for w in workers:
        w.start()
    workers.append(drip_all(slow, stop))
    try:
        time.sleep(2.0)  # every attack under way
        t0 = time.monotonic()
        r = httpx.get(base + P + "/models", timeout=5)
        read_s = time.monotonic() - t0
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        r = httpx.post(base + "/v1/chat/completions", timeout=5,
                       json={"model": "other", "messages": [{"role": "user", "content": "hi"}]})
        other_s = time.monotonic() - t0
        assert r.status_code == 200, r.text
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        bound = FAST["backoff_base"] + 5
        st = host.wait(lambda s: s["m"]["state"] == "Ready" and s["m"]["pid"] not in (None, pid),
                       timeout=bound + 10, what="m restarted")
        back_s = time.monotonic() - killed
    finally:
        stop.set()
        for w in workers:
            w.join(FLOOD_LIMIT + 5)
        for s in slow:
            s.sock.close()
    print(f"\nsoak: API read {read_s:.2f}s, other model {other_s:.2f}s, killed backend back in {back_s:.2f}s; "
          f"flood {flooded}; streams {streamed}")
    assert not any(w.is_alive() for w in workers)
    assert st["m"]["restarts"] == 1
    assert back_s <= bound, f"restarted after {back_s:.1f}s (bound {bound}s)"
    assert flooded.get(200, 0) > 0, flooded
    assert streamed.get(200, 0) >= 1 and set(streamed) <= {200, 429}, streamed  # beyond the model's pool: 429
    assert daemon.poll() is None
    log = host.daemon_log()
    assert "Traceback" not in log and "EMFILE" not in log and "Too many open files" not in log, log[-3000:]
    assert len(log) < 1_000_000
    assert httpx.get(base + P + "/models/m", timeout=5).json()["state"] == "Ready"
