"""GPUs and how they were found (NVML, nvidia-smi, the KFD topology in sysfs), and whether this user may
open the device nodes the GPU runtimes need (/dev/kfd and /dev/dri/renderD* for ROCm and Vulkan,
/dev/nvidiactl and /dev/nvidiaN for CUDA). Detection itself is the inventory's (detect_host)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from xgen_declare.inventory.amd import KFD_NODES
from xgen_declare.inventory.model import Gpu, Inventory
from xgen_declare.doctor.findings import DoctorHost, Finding, os_reason

AMD_ACCESS_FIX = ("add the user to the render and video groups: sudo usermod -aG render,video $USER, then log in "
                  "again (in a container: --group-add render --group-add video)")
AMD_MISSING_FIX = ("load the amdgpu driver (sudo modprobe amdgpu); in a container pass --device /dev/kfd "
                   "--device /dev/dri")
NVIDIA_ACCESS_FIX = "give the user the group that owns the device node (ls -l it) and log in again"
NVIDIA_MISSING_FIX = ("load the NVIDIA driver (nvidia-smi must work); in a container run with --gpus all "
                      "(NVIDIA Container Toolkit)")


def _describe(g: Gpu) -> str:
    memory = f"{g.memory_total_mib} MiB" if g.memory_total_mib is not None else "memory unknown"
    extra = ", ".join(x for x in (g.gfx, "integrated" if g.integrated else None, memory) if x)
    return f"GPU {g.index} {g.name} ({extra})"


def gpu_findings(inv: Inventory, sources: dict[str, str], host: DoctorHost) -> list[Finding]:
    out = []
    nvidia = [g for g in inv.gpus if g.vendor == "nvidia"]
    amd = [g for g in inv.gpus if g.vendor == "amd"]
    nvml_why = sources.get("nvml", "not used")
    kfd = Path(host.sysfs_root).joinpath(*KFD_NODES)
    if nvidia:
        how = "NVML" if sources.get("nvidia") == "nvml" else f"nvidia-smi (NVML: {nvml_why})"
        out.append(Finding("gpu", "ok", f"{len(nvidia)} NVIDIA GPU(s) via {how}: "
                           + "; ".join(_describe(g) for g in nvidia)))
    else:
        smi = shutil.which("nvidia-smi", path=host.path)
        ctl = Path(host.dev_root) / "nvidiactl"
        if smi or ctl.exists():
            seen = smi or str(ctl)
            out.append(Finding("gpu", "warn", f"NVIDIA driver files present ({seen}) but no NVIDIA GPU found "
                               f"(NVML: {nvml_why})", "run nvidia-smi to see the driver's own error; "
                               "in a container use --gpus all (NVIDIA Container Toolkit)"))
    if amd:
        out.append(Finding("gpu", "ok", f"{len(amd)} AMD GPU(s) via KFD sysfs ({kfd}): "
                           + "; ".join(_describe(g) for g in amd)))
    elif (Path(host.dev_root) / "kfd").exists():
        out.append(Finding("gpu", "warn", f"{host.dev_root}/kfd exists but {kfd} lists no AMD GPU",
                           "check `dmesg | grep -i amdgpu`; give --sysfs-root if sysfs is mounted elsewhere"))
    if not inv.gpus:
        smi_state = "not on PATH" if not shutil.which("nvidia-smi", path=host.path) else "found no GPU"
        out.append(Finding("gpu", "ok", f"no GPU found (NVML: {nvml_why}; nvidia-smi: {smi_state}; KFD sysfs: no "
                           f"GPU node under {kfd}): models run on the CPU"))
    hidden = [g for g in inv.gpus if g.hidden]
    if hidden:
        out.append(Finding("gpu", "warn", "hidden from the daemon by CUDA_VISIBLE_DEVICES/ROCR_VISIBLE_DEVICES: "
                           + ", ".join(f"GPU {g.index}" for g in hidden),
                           "unset the variable in the daemon's environment to let it use every GPU"))
    for w in inv.warnings:
        out.append(Finding("gpu", "warn", f"detection: {w}",
                           "check the file or program named; detection went on without it"))
    return out


def _check_nodes(paths: list[str], host: DoctorHost, needed: bool, access_fix: str, missing_fix: str,
                 what: str) -> list[Finding]:
    out, fine = [], []
    for path in paths:
        try:
            host.open_device(path)
        except OSError as exc:
            fix = missing_fix if exc.errno == errno.ENOENT else access_fix if exc.errno in (
                errno.EACCES, errno.EPERM) else f"check the device node: ls -l {path}"
            out.append(Finding("device", "fail" if needed else "warn",
                               f"{path}: cannot open read-write ({os_reason(exc)}): {what} cannot use the GPU", fix))
        else:
            fine.append(path)
    if fine:
        out.insert(0, Finding("device", "ok", f"read-write access to {', '.join(fine)}"))
    return out


def device_findings(inv: Inventory, host: DoctorHost) -> list[Finding]:
    out = []
    dev = host.dev_root
    amd = [g for g in inv.gpus if g.vendor == "amd"]
    if amd or os.path.exists(os.path.join(dev, "kfd")):
        dri = os.path.join(dev, "dri")
        try:
            render = sorted(os.path.join(dri, n) for n in os.listdir(dri) if n.startswith("renderD"))
        except OSError:
            render = []
        if not render:
            out.append(Finding("device", "fail" if amd else "warn", f"no render node under {dri} "
                               "(ROCm and Vulkan need /dev/dri/renderD*)", AMD_MISSING_FIX))
        out += _check_nodes([os.path.join(dev, "kfd")] + render, host, bool(amd), AMD_ACCESS_FIX, AMD_MISSING_FIX,
                            "ROCm (and Vulkan, for render nodes)")
    nvidia = [g for g in inv.gpus if g.vendor == "nvidia"]
    if nvidia:
        nodes = [os.path.join(dev, "nvidiactl")] + [os.path.join(dev, f"nvidia{g.vendor_index}") for g in nvidia
                                                   if g.vendor_index is not None]
        out += _check_nodes(nodes, host, True, NVIDIA_ACCESS_FIX, NVIDIA_MISSING_FIX, "CUDA")
    return out
