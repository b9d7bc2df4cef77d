"""What a llama-server binary was built with: its GPU backends and version, probed and cached.

`llama-server --list-devices` prints one line per device ("  CUDA0: NVIDIA H100 (81079 MiB, ...)");
builds older than that flag fail it, so `--version` is read too: dynamic-backend builds log
"load_backend: loaded CUDA backend from ...", static GPU builds log "ggml_cuda_init: ..." or
"ggml_vulkan: ...". No GPU keyword in either output = a CPU-only build.
The result is cached by real path + mtime + size, in memory and under $XDG_CACHE_HOME.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xgen_declare.inventory.probecache import ProbeCache, binary_key
from xgen_declare.inventory.probe_command import run_probe

PROBE_TIMEOUT_S = 15.0

_DEVICE_LINE = re.compile(r"^\s*([A-Za-z]+)\d+\s*:", re.MULTILINE)
_LOADED = re.compile(r"loaded (\w+) backend")
_INIT = re.compile(r"ggml_(cuda|vulkan|hip|rocm|sycl|metal|musa|cann)(?:_init)?:", re.IGNORECASE)
_VERSION = re.compile(r"^version:\s*(.+)$", re.MULTILINE)
_FAMILY = {"cuda": "cuda", "hip": "rocm", "rocm": "rocm", "vulkan": "vulkan"}
_NOT_GPU = {"cpu", "rpc", "blas", "accelerate", "amx", "kleidiai"}

_cache = ProbeCache("llama-server-builds.json")


@dataclass(frozen=True)
class LlamaBuild:
    gpu_backends: frozenset[str] = frozenset()  # "cuda" | "rocm" | "vulkan" | other lower-case names
    version: str | None = None
    error: str | None = None  # set when the binary could not be probed at all
    devices: tuple[str, ...] = ()  # the lines `--list-devices` prints, e.g. "Vulkan0: AMD Radeon (16368 MiB, ...)"

    @property
    def cpu_only(self) -> bool:
        return self.error is None and not self.gpu_backends

    def describe(self) -> str:
        names = {"cuda": "CUDA", "rocm": "ROCm", "vulkan": "Vulkan"}
        return "/".join(sorted(names.get(b, b) for b in self.gpu_backends)) or "CPU-only"


def devices_in(text: str) -> tuple[str, ...]:
    """The device lines of `--list-devices` ("Available devices:" then one indented line per device)."""
    return tuple(line.strip() for line in text.splitlines() if _DEVICE_LINE.match(line))


def gpu_backends_in(text: str) -> set[str]:
    found = {m.lower() for m in _DEVICE_LINE.findall(text)}
    found |= {m.lower() for m in _LOADED.findall(text)}
    found |= {m.lower() for m in _INIT.findall(text)}
    return {_FAMILY.get(b, b) for b in found if b not in _NOT_GPU}


def _probe(binary: str, timeout: float) -> LlamaBuild:
    devices = run_probe([binary, "--list-devices"], timeout)
    if devices.error and "timed out" in devices.error:
        return LlamaBuild(error=f"--list-devices {devices.error}")
    version = run_probe([binary, "--version"], timeout)
    texts = [r.output for r in (devices, version) if r.ok]
    if not texts:
        return LlamaBuild(error=f"--version {version.describe()}")
    found = set().union(*(gpu_backends_in(t) for t in texts))
    m = _VERSION.search(version.output) if version.ok else None
    return LlamaBuild(frozenset(found), m.group(1).strip() if m else None,
                      devices=devices_in(devices.stdout) if devices.ok else ())


def probe_llama_build(binary: str, timeout: float | None = None) -> LlamaBuild:
    key = binary_key(binary)
    if key is None:
        return LlamaBuild(error="cannot stat the binary")
    entry = _cache.get(key)
    if not isinstance(entry, dict) or "devices" not in entry:  # (entries of older versions lack devices)
        build = _probe(binary, PROBE_TIMEOUT_S if timeout is None else timeout)
        if build.error:
            return build  # not cached: a crash or hang may be transient
        entry = {"gpu_backends": sorted(build.gpu_backends), "version": build.version,
                 "devices": list(build.devices)}
        _cache.put(key, entry)
    return LlamaBuild(frozenset(entry.get("gpu_backends") or ()), entry.get("version"),
                      devices=tuple(entry.get("devices") or ()))


def clear_cache() -> None:
    _cache.clear()
