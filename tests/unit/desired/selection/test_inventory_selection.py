"""backend: auto against detected fake hosts: the seed's order, llama-server-cpu before llama-cpp-python."""

from xgen_declare.desired.selection import select_backend
from xgen_declare.manifests.request import ModelLoadRequest


def pick(inv, model_path, backend="auto"):
    return select_backend(ModelLoadRequest(model_path=model_path, backend=backend), inv)


def test_gguf_prefers_vulkan_on_strix_halo(host):
    sel = pick(host("strix-halo", "llama-gpu-named"), "/m/x.gguf")
    assert sel.backend == "llama-server-vulkan" and sel.skipped == () and sel.unavailable is None


def test_gguf_on_nvidia_skips_vulkan_binary_missing(host):
    sel = pick(host("mixed", "nvidia-a100", "llama-cuda"), "/m/x.gguf")
    assert sel.backend == "llama-server-cuda"
    assert sel.skipped == (("llama-server-vulkan",  # the rule comes first (and Vulkan is not installed either)
                            "GPU 0 (NVIDIA A100-SXM4-80GB) is an NVIDIA GPU: auto picks Vulkan only for AMD GPUs, "
                            "llama-server-cuda is the fast path there; set backend: llama-server-vulkan to use it "
                            "anyway"),)
    assert not sel.noteworthy  # nothing installed was passed over: no note in plan/render


def test_gguf_on_cpu_only_falls_to_llama_server_cpu_with_reasons(host):
    sel = pick(host("cpu-only", "llama-cpu"), "/m/x.gguf")
    assert sel.backend == "llama-server-cpu"
    assert sel.skipped == (("llama-server-vulkan", "no GPU"), ("llama-server-cuda", "no NVIDIA GPU"),
                           ("llama-server-rocm", "no AMD GPU"))
    assert "llama-server-cpu is the first available backend for a GGUF file" in sel.explain()


def test_gguf_without_llama_server_uses_llama_cpp_python(host, monkeypatch):
    from xgen_declare.inventory import binaries
    monkeypatch.setattr(binaries, "_missing_modules", lambda: None)
    assert pick(host("cpu-only"), "/m/x.gguf").backend == "llama-cpp-python"


def test_hf_id_on_rx6800_has_no_backend_and_says_why(host):
    sel = pick(host("rx6800", "vllm"), "org/model")
    assert sel.backend is None
    assert "vllm-rocm: gfx1030 not in vLLM ROCm allow-list (vllm_rocm_supported_gfx)" in sel.unavailable
    assert "vllm-cpu: host has GPUs" in sel.unavailable


def test_hf_id_on_mixed_box_prefers_vllm_cuda(host):
    assert pick(host("mixed", "nvidia-a100", "vllm"), "org/model").backend == "vllm-cuda"
    assert pick(host("2xmi300x", "vllm"), "org/model").backend == "vllm-rocm"
    assert pick(host("cpu-only", "vllm"), "org/model").backend == "vllm-cpu"


def test_hf_local_directory_is_a_local_model(host, tmp_path):
    sel = pick(host("cpu-only", "vllm"), str(tmp_path))
    assert sel.backend == "vllm-cpu" and "a local HuggingFace directory" in sel.reason


def test_explicit_unavailable_backend_is_reported(host):
    sel = pick(host("rx6800", "vllm"), "org/model", backend="vllm-rocm")
    assert sel.unavailable == ("backend vllm-rocm is not available on this host: gfx1030 not in vLLM ROCm "
                               "allow-list (vllm_rocm_supported_gfx)")
