"""A host's labels, for `spec.hosts` selectors (readers/selector.py): detected from the inventory, then
the config's `host: labels:` on top (a configured label replaces a detected one of the same key).

    hostname          the inventory's hostname (absent when unknown)
    arch              the machine (x86_64, aarch64), as platform.machine() says
    gpu.count         visible GPUs ("0" without any; GPUs hidden by *_VISIBLE_DEVICES do not count)
    gpu.vendor        nvidia or amd; "mixed" when both; absent without a GPU
    gpu.model         the first visible GPU's name (e.g. "AMD Instinct MI300X"); absent without a GPU
    gpu.memory_gib    the smallest visible GPU's memory in whole GiB (what every GPU has at least, as
                      NVIDIA's GPU feature discovery labels per-GPU memory); absent when unknown

Then the host's own labels: the inventory's `labels:` (an inventory file names them; `xgen-declare inventory`
writes the config's there), and `configured` (this host's config `host: labels:`, current at each pass) over
everything. Pure: the caller gives the inventory (and, to override it, the machine name).
"""

from __future__ import annotations

from collections.abc import Mapping

from xgen_declare.inventory.model import Inventory

__all__ = ["DETECTED_KEYS", "detected_labels", "host_labels"]

DETECTED_KEYS = ("hostname", "arch", "gpu.count", "gpu.vendor", "gpu.model", "gpu.memory_gib")


def detected_labels(inventory: Inventory, arch: str | None = None) -> dict[str, str]:
    arch = inventory.arch if arch is None else arch
    labels = {"arch": arch} if arch else {}
    if inventory.hostname:
        labels["hostname"] = inventory.hostname
    gpus = [g for g in inventory.gpus if not g.hidden]
    labels["gpu.count"] = str(len(gpus))
    if not gpus:
        return labels
    vendors = {g.vendor for g in gpus}
    labels["gpu.vendor"] = vendors.pop() if len(vendors) == 1 else "mixed"
    if gpus[0].name:
        labels["gpu.model"] = gpus[0].name
    memories = [g.memory_total_mib for g in gpus]
    if all(m is not None for m in memories):
        labels["gpu.memory_gib"] = str(min(memories) // 1024)
    return labels


def host_labels(inventory: Inventory, arch: str | None = None,
                configured: Mapping[str, str] | None = None) -> dict[str, str]:
    """The detected labels, then the inventory's own labels, then `configured` over them."""
    return {**detected_labels(inventory, arch), **inventory.labels, **(configured or {})}
