import pytest

from xgen_declare.inventory.gfx import classify_gfx, decode_gfx_target_version


@pytest.mark.parametrize("value, gfx", [
    (110501, "gfx1151"), (90010, "gfx90a"), (90402, "gfx942"), (100300, "gfx1030"), (90000, "gfx900"),
    (90012, "gfx90c"), (110000, "gfx1100"), (120001, "gfx1201"), (80003, "gfx803"), (90500, "gfx950"),
    (120500, "gfx1250"),
    (0, None), (-1, None), (91700, None), (90016, None), (1500, None),
])
def test_decode_gfx_target_version(value, gfx):
    assert decode_gfx_target_version(value) == gfx


@pytest.mark.parametrize("gfx, kind", [
    ("gfx1010", "amd_rdna"), ("gfx1012", "amd_rdna"), ("gfx1030", "amd_rdna"), ("gfx1036", "amd_rdna"),
    ("gfx1100", "amd_rdna"), ("gfx1103", "amd_rdna"), ("gfx1150", "amd_rdna"), ("gfx1151", "amd_rdna"),
    ("gfx1200", "amd_rdna"), ("gfx1201", "amd_rdna"),
    ("gfx908", "amd_cdna"), ("gfx90a", "amd_cdna"), ("gfx940", "amd_cdna"), ("gfx941", "amd_cdna"),
    ("gfx942", "amd_cdna"), ("gfx950", "amd_cdna"),
    ("gfx900", "amd_gcn"), ("gfx906", "amd_gcn"), ("gfx90c", "amd_gcn"), ("gfx803", "amd_gcn"),
    ("gfx1250", "amd_unknown"), ("gfx1300", "amd_unknown"), ("gfx700", "amd_unknown"), ("gfx10", "amd_unknown"),
    (None, "amd_unknown"), ("", "amd_unknown"),
])
def test_classify_gfx(gfx, kind):
    assert classify_gfx(gfx) == kind
