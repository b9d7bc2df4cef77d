"""Host inventory: GPUs, CPU and which backends can run here.

`detect()` reads live sources (each injectable for tests); `load_inventory_file()` reads a snapshot.
"""

from __future__ import annotations

from xgen_declare.inventory.model import Backend, Cpu, Gpu, Inventory

__all__ = ["Backend", "Cpu", "Gpu", "Inventory", "detect"]


def detect(config=None, *, sysfs_root: str | None = None, proc_root: str | None = None,
           path: str | None = None) -> Inventory:
    from xgen_declare.inventory.host import detect_host

    return detect_host(config, sysfs_root=sysfs_root, proc_root=proc_root, path=path)
