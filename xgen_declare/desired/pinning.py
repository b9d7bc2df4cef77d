"""GPU pinning: the environment that makes a backend see exactly the manifest's `gpus`.

`gpus` holds host indices (as `xgen-declare gpus` lists them). Each runtime numbers GPUs its own way:
  * CUDA: CUDA_DEVICE_ORDER=PCI_BUS_ID + CUDA_VISIBLE_DEVICES (UUIDs when known: immune to reordering)
  * ROCm: llama-server-rocm uses ROCR_VISIBLE_DEVICES (KFD order); vLLM-ROCm uses HIP_VISIBLE_DEVICES and
    requires CUDA_VISIBLE_DEVICES unset or equal, so we unset it. Never both ROCR_ and HIP_ to host
    indices: HIP filters *after* ROCr, so the second list would index into the first.
  * Vulkan: GGML_VK_VISIBLE_DEVICES in Vulkan's enumeration order, which differs from KFD/NVML order;
    the inventory's `vulkan_index` (matched by PCI bus id) is used when known.
Inside the backend the chosen GPUs are renumbered from 0, so `main_gpu`/`tensor_split` are positions
in `gpus`. A value of None in the returned env means "remove this variable from the child's env".
"""

from __future__ import annotations

from xgen_declare.backends.profile import profile
from xgen_declare.inventory.model import Gpu, Inventory


def _lookup(inventory: Inventory | None, gpus: list[int]) -> tuple[list[Gpu | None], list[str]]:
    found: list[Gpu | None] = []
    warnings: list[str] = []
    for i in gpus:
        g = inventory.gpu(i) if inventory is not None else None
        if inventory is not None and g is None:
            warnings.append(f"GPU {i} is not in the inventory")
        found.append(g)
    return found, warnings


def pinning_env(backend: str, gpus: list[int] | None, inventory: Inventory | None) -> tuple[dict[str, str | None], list[str]]:
    if gpus is None:
        return {}, []
    found, warnings = _lookup(inventory, gpus)

    def vendor_ids(vendor: str) -> list[str]:
        ids = []
        nvidia_count = sum(1 for g in (inventory.gpus if inventory else []) if g.vendor == "nvidia")
        for host_index, g in zip(gpus, found):
            if g is not None and g.vendor != vendor:
                warnings.append(f"GPU {host_index} is {g.vendor}, not {vendor}")
            if g is not None and g.vendor_index is not None:
                ids.append(str(g.vendor_index))
            elif vendor == "amd":
                ids.append(str(host_index - nvidia_count))
            else:
                ids.append(str(host_index))
        return ids

    pinning = profile(backend).pinning
    if pinning == "cuda":
        ids = [g.uuid if g is not None and g.uuid else x for g, x in zip(found, vendor_ids("nvidia"))]
        return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(ids)}, warnings
    if pinning == "rocr":
        return {"ROCR_VISIBLE_DEVICES": ",".join(vendor_ids("amd")), "HIP_VISIBLE_DEVICES": None,
                "CUDA_VISIBLE_DEVICES": None}, warnings
    if pinning == "hip":
        return {"HIP_VISIBLE_DEVICES": ",".join(vendor_ids("amd")), "ROCR_VISIBLE_DEVICES": None,
                "CUDA_VISIBLE_DEVICES": None}, warnings
    if pinning == "vulkan":
        ids = []
        for host_index, g in zip(gpus, found):
            if g is not None and g.vulkan_index is not None:
                ids.append(str(g.vulkan_index))
            else:
                ids.append(str(host_index))
                if inventory is not None:
                    warnings.append(f"GPU {host_index}: Vulkan index unknown, assuming host order")
        return {"GGML_VK_VISIBLE_DEVICES": ",".join(ids)}, warnings
    return {}, warnings  # CPU backends see no GPU
