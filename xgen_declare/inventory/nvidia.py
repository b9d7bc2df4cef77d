"""NVIDIA GPUs: NVML (nvidia-ml-py) first, `nvidia-smi` on PATH when NVML cannot initialise.

Both sources are seams for tests: `NVML_LOADER` returns the pynvml module (monkeypatch it with a
fake), and nvidia-smi is looked up on the `path` given (a fake script in tests) with a timeout.
`vendor_index` is filled by detect.py (CUDA order with CUDA_DEVICE_ORDER=PCI_BUS_ID).
"""

from __future__ import annotations

import re
import shutil
from typing import Any, Callable

from xgen_declare.inventory.model import Gpu
from xgen_declare.inventory.probe_command import run_probe

SMI_QUERY = "index,uuid,name,pci.bus_id,memory.total,memory.free,driver_version"
SMI_TIMEOUT_S = 10.0
_PCI = re.compile(r"^\s*([0-9a-fA-F]+):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])\s*$")


def _load_nvml() -> Any:
    import pynvml

    return pynvml


NVML_LOADER: Callable[[], Any] = _load_nvml


def normalise_pci_bus_id(value: str | None) -> str | None:
    """"00000000:3B:00.0" -> "0000:3b:00.0" (the form sysfs uses); None when it is not a PCI address."""
    m = _PCI.match(value or "")
    if not m:
        return None
    domain, bus, dev, fn = m.groups()
    return f"{int(domain, 16):04x}:{int(bus, 16):02x}:{int(dev, 16):02x}.{fn}"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _from_nvml(nvml: Any, warnings: list[str]) -> list[Gpu]:
    gpus = []
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
    except Exception:
        driver = None
    for i in range(nvml.nvmlDeviceGetCount()):
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            name = _text(nvml.nvmlDeviceGetName(h))
            uuid = _text(nvml.nvmlDeviceGetUUID(h))
            bus = normalise_pci_bus_id(_text(nvml.nvmlDeviceGetPciInfo(h).busId))
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
        except Exception as exc:
            warnings.append(f"NVML: GPU {i}: {exc}; skipped")
            continue
        try:
            cc = ".".join(map(str, nvml.nvmlDeviceGetCudaComputeCapability(h)))
        except Exception:
            cc = None
        gpus.append(Gpu(index=0, vendor="nvidia", type="nvidia", name=name, uuid=uuid, pci_bus_id=bus,
                        memory_total_mib=int(mem.total) // 2**20, memory_free_mib=int(mem.free) // 2**20,
                        compute_capability=cc, driver_version=driver))
    return gpus


def detect_nvml(warnings: list[str], loader: Callable[[], Any] | None = None,
                report: dict[str, str] | None = None) -> list[Gpu] | None:
    """GPUs from NVML, or None when NVML is absent or cannot initialise (then try nvidia-smi; the
    reason goes to `report["nvml"]`)."""
    try:
        nvml = (loader or NVML_LOADER)()
        nvml.nvmlInit()
    except Exception as exc:
        if report is not None:
            report["nvml"] = f"{type(exc).__name__}: {exc}"
        return None
    try:
        return _from_nvml(nvml, warnings)
    except Exception as exc:
        warnings.append(f"NVML: {exc}")
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _field(value: str) -> str | None:
    value = value.strip()
    return None if not value or value.startswith("[") else value  # [N/A], [Not Supported], ...


def _int_field(value: str, where: str, warnings: list[str]) -> int | None:
    v = _field(value)
    if v is None:
        return None
    try:
        return int(float(v))
    except ValueError:
        warnings.append(f"{where}: {v!r} is not a number")
        return None


def parse_smi_csv(text: str, source: str, warnings: list[str]) -> list[Gpu]:
    gpus = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}: line {n}"
        fields = line.split(",")
        if len(fields) != 7 or _field(fields[0]) is None or not fields[0].strip().isdigit():
            warnings.append(f"{where}: unexpected output {line.strip()[:80]!r}; ignored")
            continue
        _, uuid, name, bus, total, free, driver = fields
        gpus.append(Gpu(index=0, vendor="nvidia", type="nvidia", name=_field(name) or "NVIDIA GPU",
                        uuid=_field(uuid), pci_bus_id=normalise_pci_bus_id(_field(bus)),
                        memory_total_mib=_int_field(total, where, warnings),
                        memory_free_mib=_int_field(free, where, warnings), driver_version=_field(driver)))
    return gpus


def detect_smi(warnings: list[str], path: str | None = None, timeout: float | None = None) -> list[Gpu]:
    smi = shutil.which("nvidia-smi", path=path)
    if smi is None:
        return []
    argv = [smi, f"--query-gpu={SMI_QUERY}", "--format=csv,noheader,nounits"]
    result = run_probe(argv, SMI_TIMEOUT_S if timeout is None else timeout)
    if not result.ok:
        warnings.append(f"{smi}: {result.describe()}; NVIDIA GPUs not detected")
        return []
    gpus = parse_smi_csv(result.stdout, smi, warnings)
    if not gpus and result.stdout.strip():
        warnings.append(f"{smi}: no GPU in its output")
    return gpus


def detect_nvidia(warnings: list[str], *, path: str | None = None, nvml_loader: Callable[[], Any] | None = None,
                  smi_timeout: float | None = None, report: dict[str, str] | None = None,
                  ) -> tuple[list[Gpu], str | None]:
    """(GPUs, source): source is "nvml", "nvidia-smi" or None when neither found any. `report` gets
    why NVML could not be used ("nvml")."""
    gpus = detect_nvml(warnings, nvml_loader, report)
    if gpus is not None:
        return gpus, "nvml"
    gpus = detect_smi(warnings, path, smi_timeout)
    return gpus, ("nvidia-smi" if gpus else None)
