"""`doctor` on fake hosts: a healthy one, an unreadable /dev/kfd, a missing binary, a held port, a
read-only state dir (and what the CLI makes of them: the exit code, -o json).

The tests run as root, where chmod stops nothing; so an unreadable device and a read-only state dir are
made either through the seams of DoctorHost (`open_device`, `probe_write`: said so in each test) or by
paths that really fail for root too (a missing device node, a state dir below a regular file).
"""

from __future__ import annotations

import errno
import os
import socket

import psutil
import pytest

from xgen_declare.doctor.gpus import AMD_ACCESS_FIX, AMD_MISSING_FIX
from xgen_declare.doctor.host import STATE_DIR_FIX
from xgen_declare.testing.harness import free_port

from .conftest import FIXTURES, lines

KFD = str(FIXTURES / "sysfs" / "rx6800" / "class" / "kfd" / "kfd" / "topology" / "nodes")
CPU_SERVER = str(FIXTURES / "bin" / "llama-cpu" / "llama-server")


def test_healthy_host_everything_ok(fake_host):
    fake_host.manifest("m1")
    found = fake_host.run()
    assert lines(found, "warn") + lines(found, "fail") == []
    got = lines(found)
    assert got[:3] == [
        ("ok", "gpu", f"1 AMD GPU(s) via KFD sysfs ({KFD}): GPU 0 AMD Radeon RX 6800 (gfx1030, 16384 MiB)"),
        ("ok", "device", f"read-write access to {fake_host.dev}/kfd, {fake_host.dev}/dri/renderD128"),
        ("ok", "backend", f"llama-server-cpu: {CPU_SERVER} (version 7001 (abc1234), new flags, CPU-only build, "
                          "devices: none, RPC: no worker next to it)"),
    ]
    assert ("ok", "manifests", f"1 valid model(s) in 1 file(s) under {fake_host.manifests}") in got
    assert ("ok", "ports", "range 8001-8020: 20 free") in got
    assert ("ok", "state-dir", f"{fake_host.state}: writable (to be created)") in got
    assert ("ok", "inotify", "the daemon needs ~2 watch(es) for 1 manifests dir(s); max_user_watches 8192, "
                             "max_user_instances 128") in got
    assert got[-1] == ("ok", "daemon", f"not running; nothing ran with this state dir yet ({fake_host.state})")


def test_gpu_build_devices_and_rpc_worker_are_shown(fake_host):
    fake_host.bins = ["llama-vulkan-rpc"]
    fake_host.manifest("m1")
    server = FIXTURES / "bin" / "llama-vulkan-rpc" / "llama-server"
    assert ("ok", "backend", f"llama-server-vulkan: {server} (version 7002 (fed4321), new flags, Vulkan build, "
                             "devices: Vulkan0: AMD Radeon RX 6800 (16368 MiB, 16000 MiB free), RPC: "
                             f"{server.parent / 'ggml-rpc-server'})") in lines(fake_host.run())


def test_unreadable_dev_kfd_fails_with_the_group_fix(fake_host):
    # Seam: root opens any file, so DoctorHost.open_device answers EACCES for /dev/kfd as it would for a
    # user outside the render group.
    def open_device(path: str) -> None:
        if path.endswith("/kfd"):
            raise PermissionError(errno.EACCES, "Permission denied", path)

    fake_host.seams["open_device"] = open_device
    fake_host.manifest("m1")
    found = fake_host.run()
    (fail,) = [f for f in found if f.status == "fail"]
    assert (fail.check, fail.message, fail.fix) == (
        "device", f"{fake_host.dev}/kfd: cannot open read-write (Permission denied): ROCm (and Vulkan, for render "
                  "nodes) cannot use the GPU", AMD_ACCESS_FIX)
    assert ("ok", "device", f"read-write access to {fake_host.dev}/dri/renderD128") in lines(found)


def test_missing_device_nodes_fail_for_real(fake_host):
    # A real failure, also for root: the dev root has no kfd and no render node (ENOENT).
    (fake_host.dev / "kfd").unlink()
    (fake_host.dev / "dri" / "renderD128").unlink()
    found = fake_host.run()
    assert [(f.message, f.fix) for f in found if f.status == "fail"] == [
        (f"no render node under {fake_host.dev}/dri (ROCm and Vulkan need /dev/dri/renderD*)", AMD_MISSING_FIX),
        (f"{fake_host.dev}/kfd: cannot open read-write (No such file or directory): ROCm (and Vulkan, for render "
         "nodes) cannot use the GPU", AMD_MISSING_FIX),
    ]


def test_missing_configured_binary_fails(fake_host):
    config = fake_host.write_config("binaries: {llama-server-cpu: /nonexistent/llama-server}\n")
    fake_host.manifest("m1", backend="llama-server-cpu")
    found = fake_host.run()
    assert [(f.check, f.message, f.fix) for f in found if f.status == "fail"] == [
        ("backend", "llama-server-cpu: /nonexistent/llama-server (binaries: in the config) is not an executable file",
         f"fix binaries: llama-server-cpu: in {config} (the file is missing or not executable)"),
        ("backend", "no backend is available on this host",
         "scripts/bootstrap.sh --demo installs llama-server and llama-cpp-python into .venv"),
        ("manifests", f"m1: {fake_host.manifests}/m1.yaml:6: spec.backend: backend llama-server-cpu is not "
                      "available on this host: /nonexistent/llama-server (binaries: in the config) is not an "
                      "executable file",
         "install the backend, fix `binaries:` in xgen-declare.yaml, or pick another backend"),
    ]


def test_no_backend_at_all(fake_host):
    fake_host.bins = []
    fake_host.manifest("m1")
    fails = [(f.check, f.message) for f in fake_host.run() if f.status == "fail"]
    assert fails[0] == ("backend", "no backend is available on this host")
    assert fails[1][0] == "manifests" and "spec.backend: no backend available for a GGUF file" in fails[1][1]


@pytest.fixture
def held_port():
    """A real listening socket on a free loopback port: (port, holder description)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))  # outside the ephemeral range (that has a finding of its own)
    sock.listen()
    yield sock.getsockname()[1], f"pid {os.getpid()} ({psutil.Process().name()})"
    sock.close()


def test_held_port_is_named_with_its_holder(fake_host, held_port):
    # Real: the port is held by this test process, found through psutil like the daemon finds it.
    port, who = held_port
    del fake_host.seams["port_holders"]
    fake_host.write_config(f"ports: {{start: {port}, end: {port}}}\n")
    fake_host.manifest("m1", port=port)
    found = [f for f in fake_host.run() if f.check == "ports"]
    assert [(f.status, f.message, f.fix) for f in found] == [
        ("fail", f"range {port}-{port}: 0 free; {port} held by {who}",
         "models skip ports held by others: free them, or move the range (ports: in xgen-declare.yaml)"),
        ("fail", f"m1: spec.port {port} is held by {who}; the model stays Blocked",
         f"free port {port} or change spec.port of m1"),
    ]


def test_a_held_port_in_a_wide_range_is_a_warning(fake_host):
    fake_host.holders = {8003: None}
    (finding,) = [f for f in fake_host.run() if f.check == "ports"]
    assert (finding.status, finding.message) == (
        "warn", "range 8001-8020: 19 free; 8003 held by a process of another user")


def test_model_ports_in_the_ephemeral_range_are_a_warning(fake_host):
    fake_host.write_config("ports: {start: 40000, end: 40009}\n")
    fake_host.manifest("pinned", port=50000)
    found = [f for f in fake_host.run() if f.check == "ports"]
    assert [(f.status, f.message, f.fix) for f in found][-1] == (
        "warn", "11 model port(s) (40000-40009, 50000; spec.port of pinned) lie in the kernel's ephemeral range "
        "32768-60999 (net.ipv4.ip_local_port_range): an outgoing connection can hold such a port (open, or in "
        "TIME_WAIT for a minute) and a backend then cannot bind it",
        "move them below 32768 (ports: in xgen-declare.yaml, or spec.port; the default range is 8001-8020), or "
        "reserve them: sudo sysctl net.ipv4.ip_local_reserved_ports=40000-40009,50000 (persist in /etc/sysctl.d/)")
    (fake_host.proc / "sys/net/ipv4/ip_local_reserved_ports").write_text("40000-40009,50000\n")
    assert [f.status for f in fake_host.run() if f.check == "ports"] == ["ok"]  # reserved: nothing to say


def test_read_only_state_dir_through_the_seam(fake_host):
    # Seam: root writes through chmod 0555, so DoctorHost.probe_write answers EROFS as on a read-only mount.
    fake_host.state.mkdir()

    def probe_write(directory):
        raise OSError(errno.EROFS, "Read-only file system", str(directory))

    fake_host.seams["probe_write"] = probe_write
    (fail,) = [f for f in fake_host.run() if f.status == "fail"]
    assert (fail.check, fail.message, fail.fix) == (
        "state-dir", f"{fake_host.state}: not writable: Read-only file system", STATE_DIR_FIX)


def test_state_dir_below_a_regular_file_fails_for_real(fake_host):
    # A real failure, also for root: the state dir would have to be created inside a regular file.
    blocker = fake_host.tmp / "not-a-dir"
    blocker.write_text("")
    fake_host.state = blocker / "state"
    (fail,) = [f for f in fake_host.run() if f.status == "fail"]
    assert (fail.check, fail.message) == (
        "state-dir", f"{fake_host.state}: not writable: Not a directory (it does not exist yet, and {blocker} "
                     "cannot be written)")


def test_inotify_limit_below_the_manifests_tree(fake_host):
    (fake_host.proc / "sys/fs/inotify/max_user_watches").write_text("3\n")
    for sub in ("a", "b", "c"):
        (fake_host.manifests / sub).mkdir()
    (finding,) = [f for f in fake_host.run() if f.check == "inotify"]
    assert (finding.status, finding.message) == (
        "fail", "the daemon needs ~5 watch(es) for 1 manifests dir(s); max_user_watches 3, max_user_instances 128")


def test_invalid_manifest_fails(fake_host):
    fake_host.manifest("m1", ctx_size='"many"')
    (fail,) = [f for f in fake_host.run() if f.status == "fail"]
    assert fail.check == "manifests"
    assert fail.message == (f"1 problem(s) in {fake_host.manifests}: {fake_host.manifests}/m1.yaml:6: spec.ctx_size: "
                            "Input should be a valid integer, unable to parse string as an integer (write a whole number)")
    assert fail.fix == "`xgen-declare validate DIR` lists every problem with its file, line and field"


def _fake_vllm(tmp, script: str):
    """A `vllm` executable whose #! line names a fake Python that runs `script` (sh) for `-c ...`."""
    python = tmp / "fake-python3"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    vllm = tmp / "vllm"
    vllm.write_text(f"#!{python}\nimport sys\n")
    vllm.chmod(0o755)
    return vllm


def test_vllm_imports_and_its_platform(fake_host):
    vllm = _fake_vllm(fake_host.tmp, 'echo "INFO some log line"; echo 0.32.0; echo cpu')
    fake_host.write_config(f"binaries: {{vllm-cpu: {vllm}}}\n")
    assert ("ok", "vllm", f"vllm-cpu: {vllm}: vLLM 0.32.0 imports, platform cpu") in lines(fake_host.run())


def test_vllm_that_does_not_import_fails(fake_host):
    vllm = _fake_vllm(fake_host.tmp, "echo \"ModuleNotFoundError: No module named 'torchvision'\" >&2; exit 1")
    fake_host.write_config(f"binaries: {{vllm-cpu: {vllm}}}\n")
    (fail,) = [f for f in fake_host.run() if f.status == "fail"]
    assert (fail.check, fail.message) == (
        "vllm", f"vllm-cpu: `{fake_host.tmp}/fake-python3 -c 'import vllm'` exited with 1: ModuleNotFoundError: "
                "No module named 'torchvision'")
