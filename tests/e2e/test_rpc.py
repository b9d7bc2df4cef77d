"""llama.cpp RPC as one supervised group: two local ggml-rpc-server workers + llama-server (an RPC build
from scripts/build-rpc.sh) serving the tiny GGUF with every layer on the workers.

Needs the RPC build in ${XDG_CACHE_HOME:-~/.cache}/xgen-declare/llama-rpc/*/bin (or XGEN_RPC_BIN=DIR);
skipped without it (a failure under CI)."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import post_json
from xgen_declare.processes.pids import find_marked
from xgen_declare.testing.harness import free_port


def rpc_bin_dir() -> Path:
    explicit = os.environ.get("XGEN_RPC_BIN")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xgen-declare" / "llama-rpc"
    candidates = [Path(explicit)] if explicit else sorted(cache.glob("*/bin"))
    for d in candidates:
        if (d / "llama-server").is_file() and any((d / w).is_file() for w in ("ggml-rpc-server", "rpc-server")):
            return d
    pytest.skip(f"no RPC build of llama.cpp in {explicit or cache}: run scripts/build-rpc.sh (about 6 minutes "
                "on 2 cores; cached afterwards)")


def complete(endpoint: str) -> dict:
    return post_json(f"{endpoint}/completions", {"model": "x", "prompt": "hello", "max_tokens": 4})


def workers_of(owner: str, name: str) -> dict[int, psutil.Process]:
    """port -> live worker process, found by the tag the supervisor gives them."""
    out = {}
    for p in find_marked(f"{owner}/{name}+rpc/"):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out[int(p.environ()["XGEN_DECLARE_OWNER"].split("/")[-2])] = p
        except (psutil.Error, KeyError, ValueError):
            continue
    return out


def test_rpc_group(tmp_path, tiny_models, daemon_factory):
    bin_dir = rpc_bin_dir()
    d = tmp_path / "manifests"
    d.mkdir()
    p1, p2, api = free_port(), free_port(), free_port()
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: {api}, end: {api}}}
        binaries: {{llama-server-cpu: {json.dumps(str(bin_dir / "llama-server"))}}}
        reconciler: {{backoff_base: 1, backoff_max: 4, liveness_period: 1, liveness_threshold: 3}}
        """))
    (d / "big.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: xgen/v1
        kind: Model
        metadata: {{name: big}}
        spec:
          model_path: {json.dumps(str(tiny_models["chat"]))}
          backend: llama-server-cpu
          n_gpu_layers: all
          ctx_size: 512
          threads: 1
          ready_timeout: 60
          stop_grace: 5
          rpc_workers:
            - {{host: 127.0.0.1, port: {p1}, threads: 1}}
            - {{host: localhost, port: {p2}, threads: 1}}
        """))
    daemon = daemon_factory(d)
    r = daemon.cli("render", str(d))
    assert r.returncode == 0, r.stderr
    assert f"--rpc 127.0.0.1:{p1},localhost:{p2}" in r.stdout
    daemon.start()

    # 1. workers first, then the server; every layer on the two workers; a completion answers
    st = daemon.wait_ready(["big"], timeout=120)
    owner = daemon.owner_prefix()
    workers = workers_of(owner, "big")
    assert sorted(workers) == sorted([p1, p2])
    server = psutil.Process(st["big"]["pid"])
    assert all(w.create_time() <= server.create_time() for w in workers.values())
    log = (daemon.state / "logs" / "big.log").read_text(errors="replace")
    assert re.search(rf"RPC0\s*: 127\.0\.0\.1:{p1}", log) and re.search(rf"RPC1\s*: localhost:{p2}", log), log[-3000:]
    for port, host in ((p1, "127.0.0.1"), (p2, "localhost")):
        assert re.search(rf"RPC\d\[{host}:{port}\] model buffer size", log), log[-3000:]
    assert complete(st["big"]["endpoint"])["usage"]["completion_tokens"] >= 1
    print(f"\nrpc e2e: Ready with workers {sorted(workers)} (pids {[w.pid for w in workers.values()]}), "
          f"server pid {server.pid}")

    # 2. kill one worker: the whole group restarts (server and both workers) and answers again
    old = {port: w.pid for port, w in workers.items()}
    os.kill(old[p2], signal.SIGKILL)
    st = daemon.wait(lambda s: s["big"]["state"] == "Ready" and s["big"]["pid"] != server.pid, timeout=90,
                     what="big restarted as a group after a worker died")
    assert st["big"]["restarts"] >= 1
    assert f"big: Ready -> Stopping (RPC worker localhost:{p2} is not running)" in daemon.tail(200)
    workers = workers_of(owner, "big")
    assert sorted(workers) == sorted([p1, p2])
    assert all(workers[port].pid != old[port] for port in (p1, p2)), "both workers are new"
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE
    assert complete(st["big"]["endpoint"])["usage"]["completion_tokens"] >= 1
    print(f"rpc e2e: worker {p2} killed -> group restarted (restarts={st['big']['restarts']}), answers again")

    # 3. kill -9 the daemon and start it again: server and workers adopted, nothing restarted
    before = (st["big"]["pid"], {port: w.pid for port, w in workers.items()}, st["big"]["restarts"])
    daemon.kill9()
    daemon.start()
    st = daemon.wait_ready(["big"])
    time.sleep(2)  # a few supervisor ticks: the worker check runs on the adopted group
    st = daemon.status()
    assert (st["big"]["pid"], {port: w.pid for port, w in workers_of(owner, "big").items()},
            st["big"]["restarts"]) == before
    print("rpc e2e: daemon kill -9 + start: group adopted, nothing restarted")

    # 4. down: nothing left, workers included
    r = daemon.cli("down")
    assert r.returncode == 0, r.stderr
    daemon.wait(lambda s: s["big"]["state"] == "Stopped", what="big Stopped after down")
    assert daemon.leftovers() == []
    assert workers_of(owner, "big") == {}
    print("rpc e2e: down -> no process left")


def test_rpc_worker_on_another_host(tmp_path, tiny_models):
    """Two daemons play two hosts on one machine: node-a runs llama-server (rpc_server_host) with a local
    worker; the host named 127.0.0.2 (XGEN_DECLARE_HOST) runs only its worker, as entry big-rpc-PORT."""
    from tests.e2e.conftest import Daemon

    bin_dir = rpc_bin_dir()
    d = tmp_path / "manifests"
    d.mkdir()
    p1, p2, api = free_port(), free_port(), free_port()
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: {api}, end: {api}}}
        binaries: {{llama-server-cpu: {json.dumps(str(bin_dir / "llama-server"))}}}
        reconciler: {{backoff_base: 1, backoff_max: 4, liveness_period: 1, liveness_threshold: 3}}
        rpc: {{hosts: [node-a, 127.0.0.2]}}
        """))
    (d / "big.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: xgen/v1
        kind: Model
        metadata: {{name: big}}
        spec:
          model_path: {json.dumps(str(tiny_models["chat"]))}
          backend: llama-server-cpu
          n_gpu_layers: all
          ctx_size: 512
          threads: 1
          ready_timeout: 60
          stop_grace: 5
          rpc_server_host: node-a
          rpc_workers:
            - {{host: 127.0.0.1, port: {p1}, threads: 1}}
            - {{host: 127.0.0.2, port: {p2}, bind: 127.0.0.2, threads: 1}}
        """))
    a = Daemon(d, tmp_path / "state-a", tmp_path / "daemon-a.log")
    b = Daemon(d, tmp_path / "state-b", tmp_path / "daemon-b.log")
    a.env["XGEN_DECLARE_HOST"], b.env["XGEN_DECLARE_HOST"] = "node-a", "127.0.0.2"
    entry = f"big-rpc-{p2}"
    try:
        b.start()
        st_b = b.wait_ready([entry])
        assert set(st_b) == {entry}, "the worker host does not serve the model"
        a.start()
        st = a.wait_ready(["big"], timeout=120)
        assert sorted(workers_of(a.owner_prefix(), "big")) == [p1]
        log = (a.state / "logs" / "big.log").read_text(errors="replace")
        assert re.search(rf"RPC1\s*: 127\.0\.0\.2:{p2}", log), log[-3000:]
        assert re.search(rf"RPC\d\[127\.0\.0\.2:{p2}\] model buffer size", log), log[-3000:]
        assert complete(st["big"]["endpoint"])["usage"]["completion_tokens"] >= 1
        print(f"\nrpc e2e 2 hosts: node-a serves big with worker {p1}; 127.0.0.2 runs {entry}")

        # the remote worker dies: its host restarts it; node-a's server fails on the next request and is
        # restarted with back-off until the worker is back, then answers again
        os.kill(st_b[entry]["pid"], signal.SIGKILL)
        b.wait(lambda s: s[entry]["state"] == "Ready" and s[entry]["pid"] != st_b[entry]["pid"], timeout=60,
               what=f"{entry} restarted")
        deadline = time.monotonic() + 90
        while True:
            try:
                st = a.status()
                if st["big"]["state"] == "Ready" and complete(st["big"]["endpoint"])["usage"]["completion_tokens"]:
                    break
            except Exception:  # the old server aborts on this request: expected once
                pass
            assert time.monotonic() < deadline, a.tail()
            time.sleep(0.5)
        assert a.status()["big"]["restarts"] >= 1
        print(f"rpc e2e 2 hosts: {entry} killed -> restarted on its host; big restarted "
              f"(restarts={a.status()['big']['restarts']}) and answers again")

        for daemon in (a, b):
            r = daemon.cli("down")
            assert r.returncode == 0, r.stderr
        a.wait(lambda s: s["big"]["state"] == "Stopped", what="big Stopped")
        b.wait(lambda s: s[entry]["state"] == "Stopped", what=f"{entry} Stopped")
        assert a.leftovers() == [] and b.leftovers() == []
    finally:
        a.cleanup()
        b.cleanup()
