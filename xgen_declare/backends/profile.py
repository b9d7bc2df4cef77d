"""One profile per backend: every question the stages above ask about a backend, answered here, so no
module outside backends/ compares backend or family names.

Words, one meaning each:
  backend  a name of ALL_BACKENDS: llama-server-cuda, vllm-rocm, llama-cpp-python, ...
  family   the template family (templates/<family>.j2): "llama-server", "llama-cpp-python" or "vllm"
  engine   what loads the model: "llama" (a GGUF, through llama.cpp: llama-server or llama-cpp-python) or
           "vllm" (a HuggingFace model through vLLM); a manifest without a backend has an engine by
           its model path (engine_of)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xgen_declare.backends.families import (ALL_BACKENDS, DEFAULT_BINARY, FAMILY, GPU_KIND, LLAMA_FAMILY_BACKENDS,
                                            READINESS_PATH, VLLM_BACKENDS)
from xgen_declare.backends.modelpath import gguf_repo, is_gguf_path

LLAMA, VLLM = "llama", "vllm"  # the engines

KeyPassing = Literal["file_flag", "env", "none"]
Pinning = Literal["cuda", "rocr", "hip", "vulkan", "none"]


@dataclass(frozen=True)
class Profile:
    backend: str
    family: str                  # the template family
    engine: str                  # LLAMA or VLLM
    readiness_path: str          # what answers 200 once the model is loaded
    gpu_kind: str | None         # "nvidia", "amd", "any" (Vulkan), None (CPU)
    default_binary: str | None   # looked up on PATH when the config names none (None: the Python interpreter)
    api_key: KeyPassing          # file_flag: --api-key-file FILE; env: VLLM_API_KEY read from the file at spawn
    pinning: Pinning             # how its GPUs are pinned (desired/pinning.py)

    @property
    def llama_server(self) -> bool:
        """llama-server: flag dialects, RPC workers, --n-cpu-moe, downloads a HuggingFace GGUF repo itself."""
        return self.family == "llama-server"

    @property
    def python_module(self) -> bool:
        """Runs as `python -m llama_cpp.server` (llama-cpp-python): its binary is an interpreter."""
        return self.family == "llama-cpp-python"

    @property
    def output_last(self) -> bool:
        """Its llama.cpp assigns the output layer last (llama-cpp-python wheels; llama-server: first)."""
        return self.family == "llama-cpp-python"

    @property
    def takes_gpus(self) -> bool:
        """A manifest's `gpus` applies (a GPU backend, or llama-cpp-python with its own CUDA/ROCm build)."""
        return self.gpu_kind is not None or self.python_module

    @property
    def downloads_hf_repo(self) -> bool:
        return self.llama_server


def _pinning(backend: str) -> Pinning:
    if backend.endswith("-cuda"):
        return "cuda"
    if backend == "llama-server-rocm":
        return "rocr"
    if backend == "vllm-rocm":
        return "hip"
    if backend == "llama-server-vulkan":
        return "vulkan"
    return "none"


PROFILES: dict[str, Profile] = {
    b: Profile(backend=b, family=FAMILY[b], engine=LLAMA if b in LLAMA_FAMILY_BACKENDS else VLLM,
               readiness_path=READINESS_PATH[FAMILY[b]], gpu_kind=GPU_KIND[b], default_binary=DEFAULT_BINARY.get(b),
               api_key="file_flag" if FAMILY[b] == "llama-server" else "env" if b in VLLM_BACKENDS else "none",
               pinning=_pinning(b))
    for b in ALL_BACKENDS}


def profile(backend: str) -> Profile:
    """The profile of a backend name (KeyError for a name that is none: validation refuses those first)."""
    return PROFILES[backend]


def profile_of(backend: str) -> Profile | None:
    """The profile of a backend name; None for `auto` (not chosen yet) or a name that is none."""
    return PROFILES.get(backend)


def engine_of(model_path: str, backend: str, hf_file: str | None = None) -> str:
    """LLAMA or VLLM: the backend's engine, or for `auto` the one the model path calls for (a GGUF file or
    repository: llama.cpp; anything else: vLLM)."""
    if backend in PROFILES:
        return PROFILES[backend].engine
    return LLAMA if is_gguf_path(model_path) or gguf_repo(model_path, hf_file) else VLLM
