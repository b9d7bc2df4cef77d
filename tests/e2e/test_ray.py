"""A real two-node Ray cluster on loopback, converged and supervised by two xgen-declare daemons.

The two daemons play two hosts (XGEN_DECLARE_HOST node-a / node-b, each with its own config and state
dir) on the same manifests, as every host of a real cluster would. node-a runs the Ray head, node-b a
Ray worker; killing the worker's process group makes node-b's daemon restart it and it rejoins
(`ray status` lists two active nodes again, the killed one replaced); node-b's daemon killed and
started again adopts the running worker. The vLLM entry is kept Blocked here
(its binary points nowhere): serving over the cluster is the optional slow test below.

Needs `ray` in this Python environment (pip install -e '.[ray]'); skipped with that reason otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import Daemon
from xgen_declare.testing.harness import free_port

RAY_BIN = Path(sys.executable).with_name("ray")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None or not RAY_BIN.exists(),
                                reason="ray is not installed in this environment: pip install -e '.[ray]'")

MANIFEST = """\
apiVersion: xgen/v1
kind: Model
metadata: {{name: tiny}}
spec:
  model_path: {model}
  backend: vllm-cpu
  nodes: 2
  distributed: ray
  ray: {{head: node-a, workers: [node-b], head_address: 127.0.0.1, port: {gcs}, node_manager_port: {raylet}}}
"""

CONFIG = """\
binaries: {{vllm-cpu: {vllm}}}
ray:
  binary: {ray}
  node_ip_address: 127.0.0.1
  num_cpus: 1
  temp_dir: {temp}
  extra_args: [--object-store-memory=80000000, --min-worker-port={wmin}, --max-worker-port={wmax}]
  ready_timeout: 120
  stop_grace: 5
reconciler: {{resync_interval: 1, backoff_base: 1, liveness_period: 2}}
"""


def active_nodes(gcs: int) -> set[str]:
    """Node ids `ray status` lists as Active (empty when it cannot answer)."""
    r = subprocess.run([str(RAY_BIN), "status", "--address", f"127.0.0.1:{gcs}"], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if r.returncode != 0 or "Active:" not in r.stdout:
        return set()
    block = r.stdout.split("Active:", 1)[1].split("Pending:", 1)[0]
    return set(re.findall(r"node_[0-9a-f]+", block))


def two_nodes(gcs: int, other_than: set[str] | None = None) -> set[str] | None:
    nodes = active_nodes(gcs)
    return nodes if len(nodes) == 2 and nodes != other_than else None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def kill_group(pid: int | None) -> None:
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def host(tmp_path: Path, name: str, manifests: Path, temp: str, workers: tuple[int, int]) -> Daemon:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(CONFIG.format(vllm=tmp_path / "no-vllm-here", ray=RAY_BIN, temp=temp, wmin=workers[0],
                                 wmax=workers[1]))
    d = Daemon(manifests, tmp_path / f"state-{name}", tmp_path / f"daemon-{name}.log")
    d.env.update({"XGEN_DECLARE_HOST": name, "XGEN_CONFIG": str(cfg), "RAY_USAGE_STATS_ENABLED": "0"})
    return d


@pytest.fixture
def cluster(tmp_path):
    gcs, raylet = free_port(), free_port()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "tiny.yaml").write_text(MANIFEST.format(model=tmp_path / "model", gcs=gcs, raylet=raylet))
    # Ray puts unix sockets under --temp-dir: keep the path short (108-byte limit)
    temp = tempfile.mkdtemp(prefix="xr", dir="/tmp")
    a = host(tmp_path, "node-a", manifests, temp + "/a", (21000, 21099))
    b = host(tmp_path, "node-b", manifests, temp + "/b", (21100, 21199))
    pids: list[int] = []
    yield a, b, gcs, pids
    for d in (b, a):  # worker first, then the head
        d.cleanup()  # the daemon, then every process tagged with its owner id (all Ray processes are)
    for pid in pids:
        kill_group(pid)
    for d in (a, b):
        wait_for(lambda: not d.leftovers() or None, 15, f"{d.log.name}: no process left behind")
    subprocess.run(["rm", "-rf", temp], check=False)


def test_two_node_ray_cluster_supervised_and_worker_rejoins(cluster):
    a, b, gcs, pids = cluster
    a.start()
    a_status = a.wait_ready(["tiny-ray-head"], timeout=120)
    pids.append(a_status["tiny-ray-head"]["pid"])
    assert a_status["tiny"]["state"] == "Blocked"  # vllm-cpu's binary points nowhere in this test
    b.start()
    b_status = b.wait_ready(["tiny-ray-worker"], timeout=120)
    assert set(b_status) == {"tiny-ray-worker"}  # node-b serves no vLLM: it only joins the cluster
    worker_pid = b_status["tiny-ray-worker"]["pid"]
    pids.append(worker_pid)
    before = wait_for(lambda: two_nodes(gcs), 90, "2 active Ray nodes")
    print(f"ray status: {len(before)} active nodes {sorted(before)}")

    kill_group(worker_pid)  # the worker node dies: `ray start --block` and its raylet
    b_status = b.wait(lambda s: s["tiny-ray-worker"]["state"] == "Ready" and s["tiny-ray-worker"]["restarts"] >= 1
                      and s["tiny-ray-worker"]["pid"] != worker_pid, 180, "the worker restarted and Ready")
    pids.append(b_status["tiny-ray-worker"]["pid"])
    after = wait_for(lambda: two_nodes(gcs, other_than=before), 120, "2 active Ray nodes, the worker replaced")
    print(f"after kill: restarts={b_status['tiny-ray-worker']['restarts']}, {len(after)} active nodes "
          f"{sorted(after)}")
    assert len(before & after) == 1  # the head stayed, the worker is a new node
    # node-b's daemon dies and comes back: it adopts the running worker (same pid, no restart)
    b.kill9()
    b.start()
    pid, restarts = b_status["tiny-ray-worker"]["pid"], b_status["tiny-ray-worker"]["restarts"]
    adopted = b.wait_ready(["tiny-ray-worker"], timeout=60)["tiny-ray-worker"]
    assert (adopted["pid"], adopted["restarts"]) == (pid, restarts)
    head = a.status()["tiny-ray-head"]
    assert head["state"] == "Ready" and head["restarts"] == 0
    for p in psutil.Process(head["pid"]).children(recursive=True):
        assert os.getpgid(p.pid) == head["pid"]  # every Ray process of the head sits in the supervised group
