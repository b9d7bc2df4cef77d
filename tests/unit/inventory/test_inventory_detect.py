from xgen_declare.inventory import host as detect_module
from xgen_declare.inventory.host import detect_host


def test_mixed_box_numbers_nvidia_first_then_amd(host):
    inv = host("mixed", "nvidia-a100")
    assert [(g.index, g.vendor, g.type, g.gfx, g.pci_bus_id, g.vendor_index) for g in inv.gpus] == [
        (0, "nvidia", "nvidia", None, "0000:41:00.0", 0),   # NVIDIA first even with a higher bus id
        (1, "amd", "amd_rdna", "gfx1100", "0000:0a:00.0", 0),
    ]
    assert inv.warnings == []


def test_nvidia_numbered_by_pci_bus_not_smi_order(host):
    inv = host("cpu-only", "nvidia-2xa100")
    assert [(g.index, g.pci_bus_id, g.uuid, g.vendor_index, g.memory_free_mib) for g in inv.gpus] == [
        (0, "0000:07:00.0", "GPU-aaaaaaaa-0000-0000-0000-000000000001", 0, 40000),
        (1, "0000:81:00.0", "GPU-bbbbbbbb-0000-0000-0000-000000000002", 1, 81000),
    ]


def test_cuda_visible_devices_hides_gpus_by_index_or_uuid(host):
    by_index = host("cpu-only", "nvidia-2xa100", env={"CUDA_VISIBLE_DEVICES": "1"})
    assert [g.hidden for g in by_index.gpus] == [True, False]
    by_uuid = host("cpu-only", "nvidia-2xa100", env={"CUDA_VISIBLE_DEVICES": "GPU-aaaa"})
    assert [g.hidden for g in by_uuid.gpus] == [False, True]
    none = host("cpu-only", "nvidia-2xa100", env={"CUDA_VISIBLE_DEVICES": ""})
    assert [g.hidden for g in none.gpus] == [True, True]
    assert none.warnings == []


def test_visible_devices_stop_at_an_invalid_entry_with_a_warning(host):
    inv = host("cpu-only", "nvidia-2xa100", env={"CUDA_VISIBLE_DEVICES": "0,7,1"})
    assert [g.hidden for g in inv.gpus] == [False, True]
    assert inv.warnings == ["CUDA_VISIBLE_DEVICES=0,7,1: entry '7' names no nvidia GPU; it and later entries "
                            "are ignored"]


def test_rocr_visible_devices_uses_kfd_order_and_leaves_nvidia_alone(host):
    inv = host("2xmi300x", env={"ROCR_VISIBLE_DEVICES": "0"})
    # KFD node 1 (vendor_index 0) sits on bus 9f, which is host index 1
    assert [(g.index, g.hidden) for g in inv.gpus] == [(0, True), (1, False)]
    mixed = host("mixed", "nvidia-a100", env={"ROCR_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": "0"})
    assert [(g.vendor, g.hidden) for g in mixed.gpus] == [("nvidia", False), ("amd", True)]


def test_cpu_from_proc_root(host):
    cpu = host("strix-halo").cpu
    assert (cpu.cores, cpu.logical_cpus, cpu.avx2, cpu.avx512) == (2, 4, True, True)
    assert (cpu.memory_total_mib, cpu.memory_available_mib) == (126 * 1024, 120 * 1024)
    assert cpu.model_name == "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"
    assert host("rx6800").cpu.avx512 is False


def test_cpu_only_host_has_no_gpus_and_no_warnings(host):
    inv = host("cpu-only")
    assert inv.gpus == [] and inv.warnings == []


def test_missing_proc_files_are_warnings_and_psutil_fills_in(tmp_path):
    inv = detect_host(None, sysfs_root=str(tmp_path), proc_root=str(tmp_path / "proc"), path="", env={},
                      with_backends=False)
    assert inv.warnings == [f"{tmp_path}/proc/meminfo: missing", f"{tmp_path}/proc/cpuinfo: missing"]
    assert inv.cpu.memory_total_mib and inv.cpu.logical_cpus and inv.cpu.avx2 is None


def test_cpuinfo_without_flags_means_avx_unknown(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd\n\nprocessor\t: 1\n")
    (proc / "meminfo").write_text("MemTotal: 1048576 kB\nMemAvailable: 524288 kB\n")
    inv = detect_host(None, sysfs_root=str(tmp_path), proc_root=str(proc), path="", env={}, with_backends=False)
    assert (inv.cpu.avx2, inv.cpu.avx512, inv.cpu.logical_cpus) == (False, False, 2)
    assert (inv.cpu.memory_total_mib, inv.cpu.memory_available_mib) == (1024, 512)
    (proc / "cpuinfo").write_text("processor\t: 0\n")
    inv = detect_host(None, sysfs_root=str(tmp_path), proc_root=str(proc), path="", env={}, with_backends=False)
    assert inv.cpu.avx2 is None and inv.warnings == [f"{proc}/cpuinfo: no flags line; AVX support unknown"]


def test_a_crashing_stage_is_a_warning_not_an_exception(host, monkeypatch):
    def boom(*a, **k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(detect_module, "detect_amd", boom)
    inv = host("strix-halo")
    assert inv.gpus == []
    assert "AMD detection failed: ZeroDivisionError: bug" in inv.warnings


def test_env_roots_are_honoured(sysfs, monkeypatch):
    monkeypatch.setenv("XGEN_SYSFS_ROOT", str(sysfs / "rx6800"))
    monkeypatch.setenv("XGEN_PROC_ROOT", str(sysfs / "rx6800" / "proc"))
    inv = detect_host(None, path="", with_backends=False)
    assert [g.gfx for g in inv.gpus] == ["gfx1030"] and inv.cpu.avx512 is False
