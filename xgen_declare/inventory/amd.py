"""AMD GPUs from the KFD topology and the DRM memory files (no ROCm needed).

  SYSFS_ROOT/class/kfd/kfd/topology/nodes/<n>/properties   one node per CPU or GPU; simd_count 0 = CPU
  SYSFS_ROOT/class/drm/renderD<drm_render_minor>/device/   mem_info_vram_total, _vram_used, _gtt_total

Integrated GPUs (APUs) borrow system RAM through GTT. Their usable memory is one pool shared with the
CPU: VRAM carve-out + GTT, where the GTT part is bounded by MemTotal (total) and MemAvailable (free).
It is never "VRAM + GTT" on top of system RAM.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from xgen_declare.inventory.gfx import APU_GFX, classify_gfx, decode_gfx_target_version
from xgen_declare.inventory.model import Gpu
from xgen_declare.inventory.sysfs import mib, parse_key_ints, read_int, read_text

KFD_NODES = ("class", "kfd", "kfd", "topology", "nodes")
PCI_ADDR = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
# A carve-out this small next to a much larger GTT is an APU even when its gfx is not in APU_GFX.
SMALL_CARVEOUT_MIB = 1024


def _node_dirs(root: Path, warnings: list[str]) -> list[Path]:
    try:
        entries = [p for p in root.iterdir() if p.name.isdigit()]
    except FileNotFoundError:
        return []
    except OSError as exc:
        warnings.append(f"{root}: unreadable ({exc.strerror or exc})")
        return []
    return sorted(entries, key=lambda p: int(p.name))


def _pci_bus_id(props: dict[str, int], device_dir: Path | None) -> str | None:
    if "location_id" in props:
        loc, domain = props["location_id"], props.get("domain", 0)
        return f"{domain:04x}:{(loc >> 8) & 0xFF:02x}:{(loc >> 3) & 0x1F:02x}.{loc & 0x7:x}"
    if device_dir is not None:
        name = os.path.basename(os.path.realpath(device_dir))
        if PCI_ADDR.match(name):
            return name.lower()
    return None


def _is_integrated(gfx: str | None, props: dict[str, int], vram: int | None, gtt: int | None) -> bool:
    if gfx in APU_GFX or props.get("cpu_cores_count", 0) > 0:
        return True
    return vram is not None and gtt is not None and vram <= SMALL_CARVEOUT_MIB and gtt >= 8 * max(vram, 1)


def _memory(integrated: bool, vram_total: int | None, vram_used: int | None, gtt_total: int | None,
            gtt_used: int | None, meminfo: dict[str, int]) -> tuple[int | None, int | None]:
    vram_free = None if vram_total is None or vram_used is None else max(vram_total - vram_used, 0)
    if not integrated or gtt_total is None:
        return vram_total, vram_free
    gtt_free = max(gtt_total - (gtt_used or 0), 0)
    total_cap, free_cap = meminfo.get("MemTotal"), meminfo.get("MemAvailable")
    pool_total = min(gtt_total, total_cap) if total_cap is not None else gtt_total
    pool_free = min(gtt_free, free_cap) if free_cap is not None else gtt_free
    return (vram_total or 0) + pool_total, None if vram_free is None else vram_free + pool_free


def _read_node(node: Path, sysfs: Path, meminfo: dict[str, int], warnings: list[str]) -> dict | None:
    """One KFD node -> Gpu fields (without host index), or None for a CPU node / unusable node."""
    path = node / "properties"
    text = read_text(path, warnings)
    if text is None:
        return None
    props = parse_key_ints(path, text, warnings)
    if "simd_count" not in props:
        warnings.append(f"{path}: no simd_count (truncated?); node skipped")
        return None
    if props["simd_count"] == 0:
        return None  # a CPU node
    raw = props.get("gfx_target_version")
    gfx = decode_gfx_target_version(raw) if raw is not None else None
    if gfx is None:
        warnings.append(f"{path}: gfx_target_version {raw if raw is not None else 'missing'} "
                        "is not a valid gfx target")
    kind = classify_gfx(gfx)
    if gfx is not None and kind == "amd_unknown":
        warnings.append(f"{path}: {gfx} is not in the gfx classification table; type amd_unknown")

    device_dir = None
    vram_total = vram_used = gtt_total = gtt_used = None
    name = None
    if "drm_render_minor" in props:
        device_dir = sysfs / "class" / "drm" / f"renderD{props['drm_render_minor']}" / "device"
        vram_total = mib(read_int(device_dir / "mem_info_vram_total", warnings, missing_ok=False))
        vram_used = mib(read_int(device_dir / "mem_info_vram_used", warnings))
        gtt_total = mib(read_int(device_dir / "mem_info_gtt_total", warnings))
        gtt_used = mib(read_int(device_dir / "mem_info_gtt_used", warnings))
        product = read_text(device_dir / "product_name", warnings, missing_ok=True)
        name = product.strip() if product and product.strip() else None
    else:
        warnings.append(f"{path}: no drm_render_minor; memory unknown")

    integrated = _is_integrated(gfx, props, vram_total, gtt_total)
    total, free = _memory(integrated, vram_total, vram_used, gtt_total, gtt_used, meminfo)
    unique_id = props.get("unique_id")
    return {
        "vendor": "amd", "type": kind, "gfx": gfx, "integrated": integrated,
        "name": name or f"AMD Radeon {'Graphics' if integrated else 'GPU'} ({gfx or 'unknown gfx'})",
        "memory_total_mib": total, "memory_free_mib": free,
        "vram_total_mib": vram_total, "gtt_total_mib": gtt_total,
        "uuid": f"GPU-{unique_id:016x}" if unique_id else None,
        "pci_bus_id": _pci_bus_id(props, device_dir),
    }


def detect_amd(sysfs_root: str, meminfo: dict[str, int], warnings: list[str]) -> list[Gpu]:
    """AMD GPUs in KFD order; `vendor_index` is the ROCr index. `index` is assigned later (host-wide)."""
    sysfs = Path(sysfs_root)
    gpus: list[Gpu] = []
    for node in _node_dirs(sysfs.joinpath(*KFD_NODES), warnings):
        fields = _read_node(node, sysfs, meminfo, warnings)
        if fields is not None:
            gpus.append(Gpu(index=0, vendor_index=len(gpus), **fields))
    return gpus
