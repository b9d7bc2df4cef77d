"""The host inventory as plain, validated data.

The same model is printed by `xgen-declare inventory`, read back by `--inventory FILE` (so a GPU host
can be snapshotted and its commands previewed elsewhere), and produced by live detection.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from xgen_declare.readers.selector import checked_labels

GpuType = Literal["nvidia", "amd_rdna", "amd_cdna", "amd_gcn", "amd_unknown"]


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="Host-wide index: NVIDIA by PCI bus id, then AMD by PCI bus id")
    vendor: Literal["nvidia", "amd"]
    name: str = ""
    type: GpuType
    gfx: str | None = Field(None, description="AMD target, e.g. gfx1151")
    integrated: bool = False
    memory_total_mib: int | None = None
    memory_free_mib: int | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    vendor_index: int | None = Field(
        None, description="Index in the vendor runtime's own numbering (CUDA/NVML order, or ROCr/KFD order)")
    vulkan_index: int | None = Field(None, description="Index in Vulkan's enumeration, when known")
    compute_capability: str | None = None
    driver_version: str | None = None
    gtt_total_mib: int | None = None
    vram_total_mib: int | None = Field(
        None, description="Dedicated VRAM (for an integrated GPU: the BIOS carve-out); memory_total_mib is "
                          "what the GPU can use, for an integrated GPU a pool shared with the CPU")
    hidden: bool = Field(False, description="Hidden from the daemon by CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES")


class Cpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cores: int | None = None
    logical_cpus: int | None = None
    memory_total_mib: int | None = None
    memory_available_mib: int | None = None
    avx2: bool | None = None
    avx512: bool | None = None
    model_name: str | None = None


class Backend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    available: bool
    binary: str | None = None
    reason: str = ""
    dialect: Literal["new", "old"] | None = Field(
        None, description="llama-server flag dialect of the binary (see render); null when unknown")
    version: str | None = None


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["xgen/v1"] = "xgen/v1"
    kind: Literal["Inventory"] = "Inventory"
    hostname: str | None = None
    arch: str | None = Field(None, description="The machine (x86_64, aarch64), as platform.machine() says: the "
                             "`arch` label")
    labels: dict[str, str] = Field(default_factory=dict, description="The host's own labels for `spec.hosts` "
                                   "(`xgen-declare inventory` writes the config's host.labels here); added to "
                                   "the detected ones, and winning")
    gpus: list[Gpu] = Field(default_factory=list)
    cpu: Cpu = Field(default_factory=Cpu)
    backends: list[Backend] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, labels):
        return checked_labels(labels)

    def backend(self, name: str) -> Backend | None:
        return next((b for b in self.backends if b.name == name), None)

    def is_available(self, name: str) -> bool:
        b = self.backend(name)
        return bool(b and b.available)

    def gpu(self, index: int) -> Gpu | None:
        return next((g for g in self.gpus if g.index == index), None)

    def gpus_json(self) -> list[dict]:
        """`gpus -o json` and GET /api/management/gpus."""
        return [gpu.model_dump(mode="json") for gpu in self.gpus]

    def backends_json(self) -> list[dict]:
        """`backends -o json` and GET /api/management/backends."""
        return [{"name": b.name, "available": b.available, "binary": b.binary, "reason": b.reason}
                for b in self.backends]
