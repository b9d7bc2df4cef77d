"""Every backend-family fact in one place: backend names and families, default executables, readiness
protocol, selection order and the GPU kind each backend needs. Below config, inventory and manifests:
imports only the model-path rules beside it (a GPU is anything with `vendor` and `hidden`)."""

from __future__ import annotations

from typing import Iterable, Protocol



class Gpu(Protocol):
    """What the GPU-kind rule reads of a GPU (inventory/model.py's Gpu)."""

    @property
    def vendor(self) -> str: ...
    @property
    def hidden(self) -> bool: ...

LLAMA_SERVER_BACKENDS = ("llama-server-vulkan", "llama-server-cuda", "llama-server-rocm", "llama-server-cpu")
VLLM_BACKENDS = ("vllm-cuda", "vllm-rocm", "vllm-cpu")
ALL_BACKENDS = LLAMA_SERVER_BACKENDS + ("llama-cpp-python",) + VLLM_BACKENDS
LLAMA_FAMILY_BACKENDS = LLAMA_SERVER_BACKENDS + ("llama-cpp-python",)

# Template (family) per backend name: templates/<family>.j2
FAMILY = {**{b: "llama-server" for b in LLAMA_SERVER_BACKENDS},
          "llama-cpp-python": "llama-cpp-python",
          **{b: "vllm" for b in VLLM_BACKENDS}}

# How a backend says it is ready (and alive).
#   llama-server: GET /health -> 503 while loading, 200 when ready
#   vLLM:         GET /health -> connection refused until ready, then 200
#   llama-cpp-python: no /health (404); GET /v1/models -> 200 once the model is loaded
READINESS_PATH = {"llama-server": "/health", "vllm": "/health", "llama-cpp-python": "/v1/models"}

# Executable names looked up on PATH when the config's `binaries:` does not name one.
DEFAULT_BINARY = {
    "llama-server-vulkan": "llama-server-vulkan",
    "llama-server-cuda": "llama-server-cuda",
    "llama-server-rocm": "llama-server-rocm",
    "llama-server-cpu": "llama-server",
    "vllm-cuda": "vllm",
    "vllm-rocm": "vllm",
    "vllm-cpu": "vllm",
}

# Selection order for backend: auto (the seed's order, extended). Vulkan is first only for AMD GPUs: the seed
# offers it on AMD hosts alone, and for a model on an NVIDIA GPU auto skips it (selection.py).
GGUF_ORDER = ["llama-server-vulkan", "llama-server-cuda", "llama-server-rocm", "llama-server-cpu", "llama-cpp-python"]
HF_ORDER = ["vllm-cuda", "vllm-rocm", "vllm-cpu"]

# The GPU kind a backend needs (None = runs on the CPU).
GPU_KIND = {
    "llama-server-vulkan": "any", "llama-server-cuda": "nvidia", "llama-server-rocm": "amd",
    "vllm-cuda": "nvidia", "vllm-rocm": "amd",
    "llama-server-cpu": None, "llama-cpp-python": None, "vllm-cpu": None,
}

assert set(FAMILY) == set(ALL_BACKENDS) == set(GPU_KIND)

_KIND_WORDS = {"nvidia": ("NVIDIA GPU", "CUDA_VISIBLE_DEVICES"), "amd": ("AMD GPU", "ROCR_VISIBLE_DEVICES"),
               "any": ("GPU", "CUDA_VISIBLE_DEVICES/ROCR_VISIBLE_DEVICES")}


def gpu_kind_missing(gpus: Iterable[Gpu], kind: str | None) -> str | None:
    """Why a host with these GPUs cannot run a backend needing `kind` (GPU_KIND), or None when it can."""
    if kind is None:
        return None
    label, var = _KIND_WORDS[kind]
    pool = [g for g in gpus if kind == "any" or g.vendor == kind]
    if not pool:
        return f"no {label}"
    if all(g.hidden for g in pool):
        return f"every {label} is hidden by {var}"
    return None

