"""`doctor` against a real daemon (fake backend, `run --api`): it finds the daemon through the state dir
alone (no DIR given), with its pid, uptime and API address, our model's port, and the model's state."""

from __future__ import annotations

import json
import time

import psutil

from xgen_declare.processes.state_store import StateStore

from .test_api import free_port


def test_doctor_sees_the_running_daemon_its_api_port_and_model(host):
    host.write("m1")
    api_port = free_port()
    daemon = host.start_daemon("--api", "--api-port", str(api_port))
    host.wait_ready("m1")
    deadline = time.monotonic() + 15
    while "api" not in StateStore(host.state).daemon_info() and time.monotonic() < deadline:
        time.sleep(0.1)
    r = host.cli("doctor", "-o", "json")
    found = {(f["check"], f["status"], f["message"]) for f in json.loads(r.stdout)["findings"]}
    uptime = next(m for c, _, m in found if c == "daemon").split("up ")[1].split(",")[0]
    assert ("daemon", "ok", f"running: pid {daemon.pid}, up {uptime}, serving {host.manifests}, "
                            f"API http://127.0.0.1:{api_port}") in found, found
    assert uptime.endswith("s")
    assert ("ports", "ok", f"range {host.base}-{host.base + 9}: 9 free; ours: {host.base} (m1)") in found, found
    assert ("models", "ok", "1 model(s) in the state dir: 1 Ready") in found, found
    name = psutil.Process(daemon.pid).name()
    assert ("state-dir", "ok", f"locked by pid {daemon.pid} ({name}): one xgen-declare process acts on the "
                               "models at a time") in found, found
