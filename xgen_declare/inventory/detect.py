"""Live host detection (placeholder until the inventory issue lands: CPU + binaries only)."""

from __future__ import annotations

import importlib.util
import shutil

from ..backends import DEFAULT_BINARY, GGUF_ORDER, HF_ORDER
from .model import Backend, Inventory


def detect_host(config=None, *, sysfs_root=None, proc_root=None, path=None) -> Inventory:
    backends = []
    for name in GGUF_ORDER + HF_ORDER:
        if name == "llama-cpp-python":
            ok = importlib.util.find_spec("llama_cpp") is not None
            backends.append(Backend(name=name, available=ok, reason="" if ok else "module llama_cpp not importable"))
        elif name in ("llama-server-cpu", "vllm-cpu"):
            binary = shutil.which(DEFAULT_BINARY[name], path=path)
            backends.append(Backend(name=name, available=bool(binary), binary=binary,
                                    reason="" if binary else f"{DEFAULT_BINARY[name]} not found on PATH"))
        else:
            backends.append(Backend(name=name, available=False, reason="no GPU detected"))
    return Inventory(backends=backends)
