"""AMD gfx targets: decode KFD's `gfx_target_version` and classify a target from an explicit table.

KFD encodes the target as major*10000 + minor*100 + stepping. The LLVM name prints the major in
decimal and minor and stepping as one **hex** digit each: 90010 -> gfx90a, 110501 -> gfx1151.
A minor or stepping over 0xf cannot be written as one digit, so the value is invalid.
Nothing is guessed: a target missing from the table is `amd_unknown`.
"""

from __future__ import annotations

import re

# (regex on the full gfx name, type). First match wins; CDNA is listed before the GCN catch-all.
GFX_CLASSES: tuple[tuple[str, str], ...] = (
    (r"gfx101[0-9a-f]", "amd_rdna"),   # RDNA1: RX 5000
    (r"gfx103[0-9a-f]", "amd_rdna"),   # RDNA2: RX 6000, Rembrandt/Raphael iGPUs
    (r"gfx110[0-9a-f]", "amd_rdna"),   # RDNA3: RX 7000, Phoenix iGPU
    (r"gfx115[0-9a-f]", "amd_rdna"),   # RDNA3.5: Strix Point / Strix Halo iGPUs
    (r"gfx120[0-9a-f]", "amd_rdna"),   # RDNA4: RX 9000
    (r"gfx908", "amd_cdna"),           # MI100
    (r"gfx90a", "amd_cdna"),           # MI200
    (r"gfx94[0-2]", "amd_cdna"),       # MI300
    (r"gfx950", "amd_cdna"),           # MI350
    (r"gfx[89][0-9a-f]{2}", "amd_gcn"),  # other GCN: Polaris, Vega (gfx900/906), Renoir/Cezanne (gfx90c)
)

# Targets only ever shipped as integrated GPUs (APUs); used with the memory heuristic in amd.py.
APU_GFX = frozenset({
    "gfx902", "gfx909", "gfx90c",            # Raven, Picasso, Renoir/Cezanne/Lucienne
    "gfx1013",                               # Cyan Skillfish
    "gfx1033", "gfx1035", "gfx1036", "gfx1037",  # Van Gogh, Rembrandt, Raphael, Mendocino
    "gfx1103",                               # Phoenix / Hawk Point
    "gfx1150", "gfx1151", "gfx1152", "gfx1153",  # Strix Point, Strix Halo, Krackan, Medusa
})


def decode_gfx_target_version(value: int) -> str | None:
    """KFD `gfx_target_version` -> "gfx1151"; None when the value cannot name a target (0 = CPU node)."""
    if value <= 0:
        return None
    major, minor, stepping = value // 10000, (value // 100) % 100, value % 100
    if major == 0 or minor > 0xF or stepping > 0xF:
        return None
    return f"gfx{major}{minor:x}{stepping:x}"


def classify_gfx(gfx: str | None) -> str:
    """amd_rdna | amd_cdna | amd_gcn | amd_unknown, from GFX_CLASSES only."""
    if gfx:
        for pattern, kind in GFX_CLASSES:
            if re.fullmatch(pattern, gfx):
                return kind
    return "amd_unknown"
