"""A bad edit never takes a model down (issue 15 item 2), daemon + router + fake backend: the new spec
exits at start, the last good spec is started again, clients streaming through the router see no
failed request, `status` shows rollout_error, the failed spec is not retried in a loop; the next edit
rolls out normally. A daemon killed -9 mid-rollout: the next one adopts the new process and closes
the rollout (one process for the name)."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import psutil

from xgen_declare.processes.pids import find_marked

from .conftest import manifest
from .test_router import start_router
from .test_rollout_drain import Clients, SLOW


def starts(host) -> int:
    return (host.state / "logs" / "a.log").read_text().count("starting a (")


def test_a_spec_that_cannot_start_is_rolled_back_without_failed_requests(host):
    rollout = {"strategy": "recreate", "drain_timeout": "30s"}
    host.write("a", manifest("a", ctx_size=4096, env=SLOW, rollout=rollout))
    base = start_router(host)
    good = host.wait_ready("a")["a"]["spec_hash"]
    clients = Clients(base, "a")
    try:
        host.wait(lambda s: clients.done >= 6, 20, "requests before the edit")
        host.write("a", manifest("a", ctx_size=8192, env={"FAKE_MODE": "exit_now"}, rollout=rollout))
        st = host.wait(lambda s: s["a"]["rollout_error"] and s["a"]["state"] == "Ready", 30, "rolled back")
        before = clients.done
        host.wait(lambda s: clients.done >= before + 6, 20, "requests after the rollback")
        n = starts(host)
        time.sleep(3)  # passes and resyncs (2 s) with the failed spec still in the manifest
        assert starts(host) == n, "the failed spec was retried"
    finally:
        clients.finish()
    assert clients.failures == []
    a = st["a"]
    assert (a["spec_hash"], a["last_good_spec_hash"]) == (good, good)
    assert a["rollout_error"].startswith("the rollout of spec ") and "exited with code 3 during start" in a["rollout_error"]
    assert "fake: failed to load model (exit_now)" in a["rollout_error"]  # the log tail
    history = json.loads(host.cli("history", "a", "-o", "json").stdout)
    assert [e["result"] for e in history] == ["succeeded", "failed", "rolled back"]
    plan = host.cli("plan").stdout.splitlines()[0]
    assert plan.startswith("keep     a: rolled back: a rollout of this spec (")
    with httpx.stream("GET", base + "/api/management/events", params={"since": 0, "timeout": 0.5}, timeout=10) as r:
        types = [json.loads(x[6:])["type"] for x in r.iter_lines() if x.startswith("data: ")]
    assert [t for t in types if t.startswith("roll")] == ["rollout_started", "rollout_failed", "rolled_back"]
    model = httpx.get(base + "/api/management/models/a", timeout=10).json()
    assert model["last_good_spec_hash"] == good and model["rollout_error"] == a["rollout_error"]

    host.write("a", manifest("a", ctx_size=2048, env=SLOW, rollout=rollout))  # a good edit: rolled out
    st = host.wait(lambda s: s["a"]["spec_hash"] not in (good,) and s["a"]["state"] == "Ready", 20, "new spec")
    assert st["a"]["rollout_error"] is None and st["a"]["last_good_spec_hash"] == st["a"]["spec_hash"]


def test_daemon_killed_mid_rollout_the_next_one_finishes_it(host):
    host.write("a", manifest("a", ctx_size=4096))
    host.start_daemon()
    old = host.wait_ready("a")["a"]["pid"]
    host.write("a", manifest("a", ctx_size=8192, env={"FAKE_MODE": "load=3"}))
    st = host.wait(lambda s: s["a"]["state"] == "Starting" and s["a"]["pid"] not in (None, old), 15, "new spec starting")
    new = st["a"]["pid"]
    os.killpg(host.daemons[-1].pid, signal.SIGKILL)
    host.daemons[-1].wait(10)
    host.start_daemon()
    st = host.wait(lambda s: s["a"]["state"] == "Ready", 20, "adopted and Ready")
    assert st["a"]["pid"] == new and not psutil.pid_exists(old)
    owner = (host.state / "owner_id").read_text().strip()
    assert [p.pid for p in find_marked(owner + "/a/")] == [new]  # one process serves the name
    history = json.loads(host.cli("history", "a", "-o", "json").stdout)
    assert [e["result"] for e in history] == ["succeeded", "succeeded"]
    assert history[-1]["to"] == st["a"]["spec_hash"]


def test_daemon_killed_mid_surge_leaves_one_process_and_the_next_one_finishes_it(host):
    """Issue 15, bad input: kill -9 while a surge's new process starts beside the serving one. The next
    daemon kills the successor (rolled back), plans the surge again and completes it; after it settles
    exactly one process carries the model's tag, on the new spec."""
    surge = {"strategy": "surge"}
    host.write("a", manifest("a", ctx_size=4096, rollout=surge))
    host.start_daemon()
    first = host.wait_ready("a")["a"]
    host.write("a", manifest("a", ctx_size=8192, rollout=surge, env={"FAKE_MODE": "load=3"}))
    owner = (host.state / "owner_id").read_text().strip()
    host.wait(lambda s: len(find_marked(owner + "/a/")) == 2, 15, "the successor started beside the old one")
    successor = next(p.pid for p in find_marked(owner + "/a/") if p.pid != first["pid"])
    row = host.status()["a"]
    assert row["pid"] == first["pid"]  # the old one still serves; status shows the surge under way
    assert row["surge"]["pid"] == successor and row["surge"]["port"] != first["port"]
    os.killpg(host.daemons[-1].pid, signal.SIGKILL)
    host.daemons[-1].wait(10)
    host.start_daemon()
    st = host.wait(lambda s: s["a"]["state"] == "Ready" and s["a"]["spec_hash"] != first["spec_hash"], 30,
                   "the surge started again and swapped")
    host.wait(lambda s: len(find_marked(owner + "/a/")) == 1, 15, "one process for the name")
    assert [p.pid for p in find_marked(owner + "/a/")] == [st["a"]["pid"]]
    assert st["a"]["pid"] not in (first["pid"], successor) and not psutil.pid_exists(successor)
    assert st["a"]["port"] != first["port"]
    log = host.daemon_log()
    assert "the new process of an interrupted surge" in log
    history = json.loads(host.cli("history", "a", "-o", "json").stdout)
    assert [e["result"] for e in history] == ["succeeded", "interrupted", "succeeded"]
