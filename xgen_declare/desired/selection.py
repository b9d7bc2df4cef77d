"""`backend: auto` -> a concrete backend, explained; explicit backends are checked against the host.

Rules beyond "first available in the order" (the seed's, see backends.GGUF_ORDER / HF_ORDER):
  * Vulkan is never chosen by auto for a model on an NVIDIA GPU (the seed offers Vulkan on AMD hosts only;
    CUDA is the fast path there). An explicit `backend: llama-server-vulkan` still runs, with a note.
  * A HuggingFace repository of GGUF files (modelpath.gguf_repo) is fetched into the store and served from
    the local file like any GGUF, so every llama.cpp backend is offered for one, llama-cpp-python included
    (last, as for a file).
  * With a manifest `binary:`, an explicit backend needs only its GPU kind on the host: the inventory's
    word about the default executable does not apply (the binary itself is checked before it starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xgen_declare.inventory.model import Gpu, Inventory
from xgen_declare.backends.modelpath import gguf_repo, is_gguf_path
from xgen_declare.backends.families import GGUF_ORDER, GPU_KIND, HF_ORDER, gpu_kind_missing

if TYPE_CHECKING:
    from xgen_declare.manifests.request import ModelLoadRequest

@dataclass(frozen=True)
class Selection:
    backend: str | None
    reason: str
    skipped: tuple[tuple[str, str], ...] = ()
    unavailable: str | None = None  # set when an explicit backend is unavailable on the host
    noteworthy: bool = False  # a rule beyond availability decided (Vulkan on NVIDIA): plan and render say so

    def explain(self) -> str:
        parts = [self.reason]
        if self.skipped:
            parts.append("skipped: " + "; ".join(f"{b} ({why})" for b, why in self.skipped))
        return ". ".join(parts)


VULKAN = "llama-server-vulkan"


def _why_not(inventory: Inventory, name: str) -> str:
    b = inventory.backend(name)
    if b is None:
        return "not in the inventory"
    return b.reason or "unavailable"


def model_gpus(spec: ModelLoadRequest, inventory: Inventory) -> list[Gpu]:
    """The host GPUs a model would use: those listed in `gpus`, else every visible one."""
    if spec.gpus is not None:
        return [g for i in spec.gpus if (g := inventory.gpu(i)) is not None]
    return [g for g in inventory.gpus if not g.hidden]


def _nvidia_gpu(spec: ModelLoadRequest, inventory: Inventory) -> Gpu | None:
    """An NVIDIA GPU a Vulkan process of this model would drive. Without `gpus` that is every GPU, hidden
    ones included: Vulkan ignores CUDA_VISIBLE_DEVICES (pinning sets GGML_VK_VISIBLE_DEVICES only for gpus)."""
    pool = inventory.gpus if spec.gpus is None else model_gpus(spec, inventory)
    return next((g for g in pool if g.vendor == "nvidia"), None)


def _vulkan_on_nvidia(gpu: Gpu) -> str:
    named = f" ({gpu.name})" if gpu.name else ""
    hidden = (" (Vulkan ignores CUDA_VISIBLE_DEVICES, which hides it; list the AMD GPUs in gpus: to use Vulkan)"
              if gpu.hidden else "")
    return (f"GPU {gpu.index}{named} is an NVIDIA GPU: auto picks Vulkan only for AMD GPUs, llama-server-cuda is "
            f"the fast path there; set backend: {VULKAN} to use it anyway{hidden}")


def select_backend(spec: ModelLoadRequest, inventory: Inventory) -> Selection:
    """The backend a model runs on here, explained. Called once per model and pass, by desired/resolve.py."""
    return _auto(spec, inventory) if spec.backend == "auto" else _explicit(spec, inventory)


def _auto(spec: ModelLoadRequest, inventory: Inventory) -> Selection:
    repo = gguf_repo(spec.model_path, spec.hf_file) is not None
    if is_gguf_path(spec.model_path):
        kind, order = "a GGUF file", GGUF_ORDER
    elif repo:
        kind, order = "a GGUF repository (fetched into the store)", GGUF_ORDER
    else:
        local = Path(spec.model_path).is_dir()
        kind = "a local HuggingFace directory" if local else "a HuggingFace model id"
        order = HF_ORDER
    nvidia = _nvidia_gpu(spec, inventory)
    skipped = []
    for name in order:
        if name == VULKAN and nvidia is not None:
            skipped.append((name, _vulkan_on_nvidia(nvidia)))
            continue
        if inventory.is_available(name):
            return Selection(name, f"auto: {name} is the first available backend for {kind}", tuple(skipped),
                             noteworthy=nvidia is not None and inventory.is_available(VULKAN))
        skipped.append((name, _why_not(inventory, name)))
    return Selection(None, f"auto: no backend available for {kind}", tuple(skipped),
                     unavailable=f"no backend available for {kind}: "
                                 + "; ".join(f"{b}: {why}" for b, why in skipped))


def _explicit(spec: ModelLoadRequest, inventory: Inventory) -> Selection:
    name = spec.backend
    reason = f"{name} set in the manifest"
    if spec.binary:
        reason += f" (binary: {spec.binary})"
        missing = gpu_kind_missing(inventory.gpus, GPU_KIND[name])
    else:
        missing = None if inventory.is_available(name) else _why_not(inventory, name)
    noteworthy = name == VULKAN and _nvidia_gpu(spec, inventory) is not None
    if noteworthy:
        auto = _auto(spec, inventory).backend
        reason += f" (on an NVIDIA GPU; auto would pick {auto})" if auto else " (on an NVIDIA GPU)"
    if missing is None:
        return Selection(name, reason, noteworthy=noteworthy)
    return Selection(name, reason, unavailable=f"backend {name} is not available on this host: {missing}",
                     noteworthy=noteworthy)
