"""`xgen-declare doctor` through main(): exit codes, the text and JSON forms, the global options, and
the daemon / models findings of a state dir in use."""

from __future__ import annotations

import json
import os
import time

from xgen_declare.processes import pids
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.testing.harness import free_port

from .conftest import lines


def _args(fake_host, *extra):
    return ["doctor", str(fake_host.manifests), "--sysfs-root", str(fake_host.sysfs), "--proc-root",
            str(fake_host.proc), "--dev-root", str(fake_host.dev), "--state-dir", str(fake_host.state), *extra]


def test_cli_json_healthy_exit_0(cli, fake_host, monkeypatch):
    monkeypatch.setenv("PATH", fake_host.path())
    port = free_port()
    fake_host.write_config(f"ports: {{start: {port}, end: {port}}}\n")
    fake_host.manifest("m1")
    r = cli(*_args(fake_host, "-o", "json"))
    data = json.loads(r.out)
    assert r.code == 0, r.out
    assert set(data) == {"findings", "summary"}
    assert data["summary"]["fail"] == 0
    assert data["findings"][0] == {
        "check": "gpu", "status": "ok", "fix": None,
        "message": f"1 AMD GPU(s) via KFD sysfs ({fake_host.sysfs}/class/kfd/kfd/topology/nodes): GPU 0 AMD Radeon "
                   "RX 6800 (gfx1030, 16384 MiB)"}


def test_cli_text_failure_exit_1_with_fix_line(cli, fake_host, monkeypatch):
    monkeypatch.setenv("PATH", fake_host.path())
    (fake_host.dev / "kfd").unlink()
    r = cli(*_args(fake_host))
    assert r.code == 1
    out = r.out.splitlines()
    i = out.index(f"FAIL  device     {fake_host.dev}/kfd: cannot open read-write (No such file or directory): ROCm "
                  "(and Vulkan, for render nodes) cannot use the GPU")
    assert out[i + 1] == ("                 fix: load the amdgpu driver (sudo modprobe amdgpu); in a container pass "
                          "--device /dev/kfd --device /dev/dri")
    assert out[-1].startswith("1 fail, ")


def test_running_daemon_pid_uptime_api_and_troubled_model(fake_host):
    store = StateStore(fake_host.state)
    assert store.try_lock()  # this test process plays the daemon: lock held, identity recorded
    try:
        ident = pids.identify(os.getpid())
        store.write_daemon_info({"pid": os.getpid(), "start_ticks": ident.start_ticks, "boot_id": ident.boot_id,
                                 "started_at": time.time() - 300, "manifests": [str(fake_host.manifests)],
                                 "api": "http://127.0.0.1:8000"})
        store.save(Record(name="m1", state="CrashLoopBackOff", backend="llama-server-cpu", port=8001,
                          last_error="exited with 1: error: failed to load model\nmore"))
        fake_host.proc = "/proc"  # pids.matches() reads the real /proc for our pid
        got = lines(fake_host.run())
    finally:
        store.unlock()
    assert ("ok", "daemon", f"running: pid {os.getpid()}, up 5m, serving {fake_host.manifests}, "
                            "API http://127.0.0.1:8000") in got
    assert ("ok", "models", "1 model(s) in the state dir: 1 CrashLoopBackOff") in got
    assert ("warn", "models", "m1: CrashLoopBackOff: exited with 1: error: failed to load model") in got
    assert ("ok", "state-dir", f"locked by pid {os.getpid()} ({__import__('psutil').Process().name()}): one "
                               "xgen-declare process acts on the models at a time") in got


def test_doctor_is_registered_with_help(cli):
    r = cli("doctor", "--help")
    assert r.code == 0 and "--dev-root DIR" in r.out and "Exit code 1 when anything" in r.out
