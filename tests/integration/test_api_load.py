"""`run --api` under a slowloris (issue 21 finding 4): hundreds of clients that send one header byte a
second neither stall the API nor the control loop, are closed after `api.header_timeout`, and the daemon's
log says so once, not once per connection. Every wait is bounded."""

from __future__ import annotations

import json
import resource
import threading
import time

import httpx

from xgen_declare.testing.harness import free_port
from xgen_declare.testing.slowloris import SlowClient, drip_all

from .conftest import manifest
from .test_api import P, wait_up

SLOW = 1100  # the finding: 1 100 half-sent requests against a soft limit of 1 024 descriptors


def test_slowloris_neither_stalls_the_api_nor_the_control_loop(host):
    cfg = json.loads((host.manifests / "xgen-declare.yaml").read_text())
    host.write_config({**cfg, "api": {"header_timeout": 3}})  # max_connections: the default
    port = free_port()
    daemon = host.start_daemon("--api", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_up(host, base)
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (1024, 1024))  # as on the host of the finding
    slow = [SlowClient(port) for _ in range(SLOW)]
    stop = threading.Event()
    dripper = drip_all(slow, stop)
    try:
        t0 = time.monotonic()
        r = httpx.get(base + P + "/models", timeout=5)
        assert r.status_code == 200 and time.monotonic() - t0 < 3, r.text
        host.write("m1", manifest("m1"))  # the control loop converges meanwhile: state files, logs, a backend
        host.wait_ready("m1", timeout=20)
        deadline = time.monotonic() + 3 + 5
        while time.monotonic() < deadline and not all(s.is_closed() for s in slow):
            time.sleep(0.1)
        assert sum(not s.is_closed() for s in slow) == 0
        assert httpx.get(base + P + "/models/m1", timeout=5).json()["state"] == "Ready"
    finally:
        stop.set()
        dripper.join(5)
        for s in slow:
            s.sock.close()
    log = host.daemon_log()
    assert "Traceback" not in log and "EMFILE" not in log and "Too many open files" not in log
    assert log.count("closed the one waiting longest for its headers") == 1, log[-3000:]
    assert log.count("request headers took longer than 3s (api.header_timeout)") == 1, log[-3000:]
