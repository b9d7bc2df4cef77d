from xgen_declare.inventory.amd import detect_amd



def test_strix_halo_is_one_integrated_rdna_gpu_with_a_shared_pool(host):
    inv = host("strix-halo")
    assert inv.warnings == []
    (gpu,) = inv.gpus
    assert (gpu.vendor, gpu.type, gpu.gfx, gpu.integrated) == ("amd", "amd_rdna", "gfx1151", True)
    assert gpu.pci_bus_id == "0000:c5:00.0"
    assert (gpu.vram_total_mib, gpu.gtt_total_mib) == (512, 65536)
    # VRAM carve-out + GTT, the GTT part bounded by MemTotal (129024 MiB) / MemAvailable (122880 MiB)
    assert gpu.memory_total_mib == 512 + 65536
    assert gpu.memory_free_mib == (512 - 100) + (65536 - 1024)


def test_integrated_pool_is_bounded_by_mem_available(sysfs):
    warnings = []
    (gpu,) = detect_amd(str(sysfs / "strix-halo"), {"MemTotal": 32768, "MemAvailable": 8192}, warnings)
    assert gpu.memory_total_mib == 512 + 32768  # never VRAM + GTT on top of system RAM
    assert gpu.memory_free_mib == 412 + 8192
    assert warnings == []


def test_rx6800_is_discrete_rdna2(host):
    inv = host("rx6800")
    (gpu,) = inv.gpus
    assert (gpu.gfx, gpu.type, gpu.integrated, gpu.name) == ("gfx1030", "amd_rdna", False, "AMD Radeon RX 6800")
    assert (gpu.memory_total_mib, gpu.memory_free_mib) == (16384, 16084)
    assert gpu.uuid == "GPU-1234abcd5678ef01"
    assert inv.warnings == []


def test_two_mi300x_numbered_by_pci_bus_with_kfd_vendor_index(host):
    inv = host("2xmi300x")
    assert [(g.index, g.pci_bus_id, g.vendor_index, g.gfx, g.type) for g in inv.gpus] == [
        (0, "0000:1b:00.0", 1, "gfx942", "amd_cdna"),
        (1, "0000:9f:00.0", 0, "gfx942", "amd_cdna"),
    ]
    assert all(not g.integrated and g.memory_total_mib == 196608 for g in inv.gpus)


def test_malformed_properties_become_warnings_naming_the_path(host, sysfs):
    inv = host("malformed")
    root = sysfs / "malformed"
    nodes = root / "class/kfd/kfd/topology/nodes"
    assert [(g.gfx, g.type) for g in inv.gpus] == [("gfx1030", "amd_rdna"), ("gfx1250", "amd_unknown"),
                                                  (None, "amd_unknown")]
    first, _, invalid = inv.gpus
    assert first.memory_total_mib == 8192 and first.memory_free_mib is None  # used unreadable: free unknown
    assert invalid.memory_total_mib is None
    expected = [
        f"{root}/class/drm/renderD128/device/mem_info_vram_used: expected an integer, got 'garbage'",
        f"{nodes}/2/properties: no simd_count (truncated?); node skipped",
        f"{nodes}/3/properties: gfx1250 is not in the gfx classification table; type amd_unknown",
        f"{nodes}/4/properties: gfx_target_version 91700 is not a valid gfx target",
        f"{root}/class/drm/renderD131/device/mem_info_vram_total: missing",
        f"{nodes}/5/properties: 2 malformed line(s) ignored",
        f"{nodes}/5/properties: no simd_count (truncated?); node skipped",
        f"{nodes}/6/properties: missing",
    ]
    for line in expected:
        assert line in inv.warnings


def test_no_kfd_means_no_amd_gpus_and_no_warning(tmp_path):
    warnings = []
    assert detect_amd(str(tmp_path / "nowhere"), {}, warnings) == []
    assert warnings == []


def test_unreadable_nodes_dir_is_a_warning(tmp_path):
    nodes = tmp_path / "class/kfd/kfd/topology"
    nodes.mkdir(parents=True)
    (nodes / "nodes").write_text("not a directory")
    warnings = []
    assert detect_amd(str(tmp_path), {}, warnings) == []
    assert len(warnings) == 1 and str(nodes / "nodes") in warnings[0]
