"""What llama.cpp actually allocated, read from the backend's log (llama-server, llama-cpp-python).

llama-server b11434 logs (at `--log-verbosity 4`; older builds at their default level):

    0.00.007.087 I load_tensors:   CPU_Mapped model buffer size =     0.49 MiB
    0.00.007.330 I llama_context:        CPU  output buffer size =     0.01 MiB
    0.00.007.357 I llama_kv_cache:        CPU KV buffer size =     0.25 MiB
    0.00.008.273 I sched_reserve:        CPU compute buffer size =     1.64 MiB

GPU devices are named by their backend and position among the GPUs the process sees (`CUDA0`,
`ROCm1`, `Vulkan0`, ...); host buffers are `CPU`, `CPU_Mapped`, `CPU_REPACK`, `CUDA_Host`, ... Older
builds print `llm_load_tensors: CUDA0 buffer size = ...` and `llama_kv_cache_init: CUDA0 KV buffer
size = ...`. The log is appended across restarts, so the last group of lines (one load) counts. Lines of
one term on one device are summed: an iSWA model logs a KV line per cache (base and sliding-window), a
hybrid one an `RS buffer` line (`llama_memory_recurrent:  CPU RS buffer size = 55.37 MiB`, term
"recurrent") beside the KV line of its attention layers.
"""

from __future__ import annotations

import os
import re

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import tail_bytes

__all__ = ["parse_buffers", "read_buffers", "to_device_keys", "total_bytes"]

_TERM = [
    ("weights", re.compile(r"(?:load_tensors|llm_load_tensors):\s+(\S+) (?:model )?buffer size =\s+([\d.]+) MiB")),
    ("kv_cache", re.compile(r"\s(\S+) KV buffer size =\s+([\d.]+) MiB")),
    ("recurrent", re.compile(r"\s(\S+) RS buffer size =\s+([\d.]+) MiB")),
    ("compute", re.compile(r":\s+(\S+) compute buffer size =\s+([\d.]+) MiB")),
    ("output", re.compile(r"\s(\S+)\s+output buffer size =\s+([\d.]+) MiB")),
]
_GPU = re.compile(r"^(?:CUDA|ROCm|Vulkan|SYCL|MUSA|CANN|Metal|OpenCL|HIP)(\d+)$")
_TAIL_BYTES = 4 << 20


def parse_buffers(lines) -> dict[str, dict[str, float]]:
    """{device name: {term: MiB}} of the last load in `lines`."""
    group: dict[str, dict[str, float]] = {}
    for line in lines:
        for term, rx in _TERM:
            m = rx.search(line)
            if not m:
                continue
            if term == "weights" and any(t != "weights" for d in group.values() for t in d):
                group = {}  # a new load starts (the process was restarted)
            dev = group.setdefault(m.group(1), {})
            dev[term] = round(dev.get(term, 0.0) + float(m.group(2)), 2)
            break
    return group


def read_buffers(log_path: str | os.PathLike, gpus: list[int] | None = None) -> dict[str, dict[str, float]] | None:
    """Per device key ("GPU<host index>", "host"): MiB per term, from the end of the log; None when the
    log has no buffer lines (or cannot be read)."""
    try:  # a state-dir log: never through a planted link, never a FIFO (#21 finding 13)
        text = tail_bytes(log_path, _TAIL_BYTES, follow=False).decode("utf-8", errors="replace")
    except (OSError, FileRefused):
        return None
    found = parse_buffers(text.splitlines())
    return to_device_keys(found, gpus) if found else None


def to_device_keys(found: dict[str, dict[str, float]], gpus: list[int] | None) -> dict[str, dict[str, float]]:
    """Backend device names -> ledger keys. A GPU's position is among the GPUs the process sees (its
    `gpus`, or every GPU when not pinned); the CPU_REPACK copy of mapped weights is not counted."""
    out: dict[str, dict[str, float]] = {}
    for name, terms in found.items():
        m = _GPU.match(name)
        if m:
            pos = int(m.group(1))
            key = f"GPU{gpus[pos] if gpus and pos < len(gpus) else pos}"
        elif name == "CPU_REPACK":
            continue
        else:
            key = "host"
        dev = out.setdefault(key, {})
        for term, mib in terms.items():
            dev[term] = round(dev.get(term, 0.0) + mib, 2)
    return out


def total_bytes(buffers: dict[str, dict[str, float]]) -> dict[str, int]:
    return {key: int(sum(terms.values()) * (1 << 20)) for key, terms in buffers.items()}
