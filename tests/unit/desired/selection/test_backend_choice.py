"""Backend choice the seed's way on fake hosts: never Vulkan for an NVIDIA GPU under `auto` (issue 12 item 6),
and a manifest `binary:` override is not "unavailable" because the default binary is missing (item 10)."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from xgen_declare.desired.selection import select_backend
from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.desired.checks import host_problems
from xgen_declare.desired.resolve import resolve
from xgen_declare.manifests.load import load_paths
from xgen_declare.manifests.request import ModelLoadRequest

NVIDIA_SKIP = ("GPU 0 (NVIDIA A100-SXM4-80GB) is an NVIDIA GPU: auto picks Vulkan only for AMD GPUs, "
               "llama-server-cuda is the fast path there; set backend: llama-server-vulkan to use it anyway")


def pick(inv, model_path="/m/x.gguf", **spec):
    return select_backend(ModelLoadRequest(model_path=model_path, **spec), inv)


# ---- item 6: auto never picks Vulkan on an NVIDIA GPU ------------------------------------------------

def test_nvidia_host_with_vulkan_and_cuda_installed_picks_cuda(host):
    inv = host("cpu-only", "nvidia-2xa100", "llama-gpu-named")
    assert inv.is_available("llama-server-vulkan") and inv.is_available("llama-server-cuda")
    sel = pick(inv)
    assert sel.backend == "llama-server-cuda"
    assert sel.skipped == (("llama-server-vulkan", NVIDIA_SKIP),)
    assert sel.explain() == ("auto: llama-server-cuda is the first available backend for a GGUF file. "
                             f"skipped: llama-server-vulkan ({NVIDIA_SKIP})")


def test_nvidia_host_with_only_vulkan_installed_does_not_fall_back_to_vulkan(host, monkeypatch):
    from xgen_declare.inventory import binaries
    monkeypatch.setattr(binaries, "_missing_modules", lambda: None)  # llama-cpp-python importable
    inv = host("cpu-only", "nvidia-2xa100", "llama-gpu-named")
    inv.backend("llama-server-cuda").available = False
    inv.backend("llama-server-cuda").reason = "llama-server-cuda not found on PATH"
    assert pick(inv).backend == "llama-cpp-python"


def test_mixed_host_vulkan_only_for_the_amd_gpu(host):
    inv = host("mixed", "nvidia-a100", "llama-gpu-named")
    assert pick(inv).backend == "llama-server-cuda"             # all GPUs: GPU 0 is NVIDIA
    assert pick(inv, gpus=[0]).backend == "llama-server-cuda"
    assert pick(inv, gpus=[1]).backend == "llama-server-vulkan"  # the RX 7900 XTX alone: the seed's AMD order
    assert pick(inv, gpus=[0, 1]).skipped[0] == ("llama-server-vulkan", NVIDIA_SKIP)


def test_amd_host_still_prefers_vulkan(host):
    assert pick(host("strix-halo", "llama-gpu-named")).backend == "llama-server-vulkan"


def test_explicit_vulkan_on_nvidia_still_works_and_says_so(host):
    inv = host("cpu-only", "nvidia-2xa100", "llama-gpu-named")
    sel = pick(inv, backend="llama-server-vulkan")
    assert sel.backend == "llama-server-vulkan" and sel.unavailable is None
    assert sel.explain() == ("llama-server-vulkan set in the manifest (on an NVIDIA GPU; auto would pick "
                             "llama-server-cuda)")


def test_render_and_plan_explain_the_choice(cli, write, sysfs, monkeypatch, fake_bin):
    monkeypatch.setenv("PATH", fake_bin("nvidia-2xa100", "llama-gpu-named"))
    write("a.yaml", model_yaml("auto-one"))
    write("b.yaml", model_yaml("vk", backend="llama-server-vulkan"))
    r = cli("--sysfs-root", str(sysfs / "cpu-only"), "render", str(write.root), "-o", "json")
    assert r.code == 0, r.err
    by = {m["name"]: m for m in r.json()}
    assert by["auto-one"]["backend"] == "llama-server-cuda" and by["auto-one"]["argv"][0].endswith("llama-server-cuda")
    assert NVIDIA_SKIP in by["auto-one"]["backend_reason"]
    assert by["vk"]["backend"] == "llama-server-vulkan" and by["vk"]["warnings"] == []
    r = cli("--sysfs-root", str(sysfs / "cpu-only"), "render", str(write.root), "-o", "shell")
    assert f"# auto: llama-server-cuda is the first available backend for a GGUF file. skipped: " \
           f"llama-server-vulkan ({NVIDIA_SKIP})" in r.out
    r = cli("--sysfs-root", str(sysfs / "cpu-only"), "--state-dir", str(write.root.parent / "st"),
            "plan", str(write.root))
    assert r.code == 0, r.err
    assert f"note: auto-one: backend llama-server-cuda: auto: llama-server-cuda is the first available backend " \
           f"for a GGUF file. skipped: llama-server-vulkan ({NVIDIA_SKIP})" in r.err
    assert "note: vk: backend llama-server-vulkan: llama-server-vulkan set in the manifest (on an NVIDIA GPU; " \
           "auto would pick llama-server-cuda)" in r.err


# ---- item 10: a manifest binary: override --------------------------------------------------------------

def test_binary_override_is_not_reported_unavailable(host):
    inv = host("cpu-only")  # no llama-server anywhere
    assert not inv.is_available("llama-server-cpu")
    sel = pick(inv, backend="llama-server-cpu", binary="/opt/llama/llama-server")
    assert sel.backend == "llama-server-cpu" and sel.unavailable is None
    assert sel.explain() == "llama-server-cpu set in the manifest (binary: /opt/llama/llama-server)"


def test_binary_override_still_needs_the_gpu_kind(host):
    sel = pick(host("cpu-only"), backend="llama-server-cuda", binary="/opt/llama/llama-server")
    assert sel.unavailable == "backend llama-server-cuda is not available on this host: no NVIDIA GPU"
    sel = pick(host("cpu-only", "vllm"), "org/model", backend="vllm-cpu", binary="/opt/vllm-cpu/bin/vllm")
    assert sel.unavailable is None  # explicitly named, like binaries: vllm-cpu: in the config


@pytest.mark.parametrize("entry", ["render", "validate"])
def test_binary_override_render_and_validate_inventory_do_not_warn(cli, write, sysfs, entry, tmp_path, host):
    write("a.yaml", model_yaml("m", backend="llama-server-cpu", binary="/opt/llama/llama-server"))
    if entry == "render":
        r = cli("--sysfs-root", str(sysfs / "cpu-only"), "render", str(write.root), "-o", "shell")
        assert r.code == 0 and "warning" not in r.out + r.err and "not available" not in r.out + r.err
        assert "/opt/llama/llama-server" in r.out
    else:
        inv_file = tmp_path / "host.yaml"
        import yaml
        inv_file.write_text(yaml.safe_dump(host("cpu-only").model_dump(mode="json")))
        r = cli("validate", str(write.root), "--inventory", str(inv_file))
        assert r.code == 0, r.err
        assert "not available" not in r.err


def test_binary_override_passes_the_host_checks_the_daemon_uses(write, host):
    write("a.yaml", model_yaml("m", backend="llama-server-cpu", binary="/opt/llama/llama-server"))
    inv = host("cpu-only")
    decl = load_paths([str(write.root)]).models[0]
    assert host_problems(resolve(decl, inv), inv) == []
    d = build_desired([str(write.root)], Config(), inv, preview=True, check_host=True)
    assert d.problems == {} and d.rendered["m"].warnings == []


def test_missing_manifest_binary_blocks_with_a_hint_at_the_manifest(write, host):
    from xgen_declare.reconciler.observe import want_for

    path = write("a.yaml", model_yaml("m", backend="llama-server-cpu", binary="/opt/llama/llama-server"))
    d = build_desired([str(write.root)], Config(), host("cpu-only"), preview=True)
    assert want_for(d.rendered["m"], set()).blocked == (
        f"binary '/opt/llama/llama-server' not found (fix spec.binary in {path}, or remove it to use the "
        "backend's default executable)")


def test_nvidia_hidden_by_cuda_visible_devices_still_counts_for_vulkan(host):
    # Vulkan ignores CUDA_VISIBLE_DEVICES: without gpus: it would drive the hidden NVIDIA GPU too
    inv = host("mixed", "nvidia-a100", "llama-gpu-named", env={"CUDA_VISIBLE_DEVICES": ""})
    assert inv.gpus[0].hidden and inv.is_available("llama-server-vulkan")
    sel = pick(inv)
    assert sel.backend == "llama-server-rocm"
    assert sel.skipped[0] == ("llama-server-vulkan", NVIDIA_SKIP + " (Vulkan ignores CUDA_VISIBLE_DEVICES, which "
                                                                   "hides it; list the AMD GPUs in gpus: to use Vulkan)")
    assert pick(inv, gpus=[1]).backend == "llama-server-vulkan"
