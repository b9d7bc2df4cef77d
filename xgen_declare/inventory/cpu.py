"""The CPU and system memory: PROC_ROOT/cpuinfo and PROC_ROOT/meminfo, psutil where they say nothing.

Reading procfs through a root keeps fake hosts deterministic in tests; psutil is the fallback for
counts and memory when the files are absent (e.g. not Linux).
"""

from __future__ import annotations

from pathlib import Path

import psutil

from xgen_declare.inventory.model import Cpu
from xgen_declare.inventory.sysfs import read_text


def read_meminfo(proc_root: str, warnings: list[str]) -> dict[str, int]:
    """{"MemTotal": MiB, "MemAvailable": MiB, ...} from PROC_ROOT/meminfo; {} when unreadable."""
    path = Path(proc_root) / "meminfo"
    text = read_text(path, warnings)
    values: dict[str, int] = {}
    if text is None:
        return values
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1] == "kB":
            values[key.strip()] = int(parts[0]) // 1024
    if "MemTotal" not in values:
        warnings.append(f"{path}: no MemTotal line")
    return values


def _parse_cpuinfo(text: str) -> dict:
    logical = 0
    cores: set[tuple[str, str]] = set()
    flags: set[str] | None = None
    model = None
    block: dict[str, str] = {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if "processor" in block:
                logical += 1
                if "core id" in block:
                    cores.add((block.get("physical id", "0"), block["core id"]))
            block = {}
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        block[key] = value
        if key in ("flags", "Features") and flags is None:
            flags = set(value.split())
        if key in ("model name", "Model name") and model is None:
            model = value
    return {"logical": logical or None, "cores": len(cores) or None, "flags": flags, "model": model}


def detect_cpu(proc_root: str, meminfo: dict[str, int], warnings: list[str]) -> Cpu:
    path = Path(proc_root) / "cpuinfo"
    text = read_text(path, warnings)
    info = _parse_cpuinfo(text) if text is not None else {"logical": None, "cores": None, "flags": None,
                                                          "model": None}
    if text is not None and info["flags"] is None:
        warnings.append(f"{path}: no flags line; AVX support unknown")
    flags = info["flags"]
    vm = None
    if "MemTotal" not in meminfo or "MemAvailable" not in meminfo:
        try:
            vm = psutil.virtual_memory()
        except Exception as exc:
            warnings.append(f"psutil.virtual_memory(): {exc}")
    return Cpu(
        cores=info["cores"] or psutil.cpu_count(logical=False),
        logical_cpus=info["logical"] or psutil.cpu_count(logical=True),
        memory_total_mib=meminfo.get("MemTotal", vm.total // 2**20 if vm else None),
        memory_available_mib=meminfo.get("MemAvailable", vm.available // 2**20 if vm else None),
        avx2=None if flags is None else "avx2" in flags,
        avx512=None if flags is None else "avx512f" in flags,
        model_name=info["model"],
    )
