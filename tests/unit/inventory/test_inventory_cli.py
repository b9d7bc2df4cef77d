"""The script contract of `gpus`, `backends` and `inventory`, run in-process through main()."""

import json

import pytest
import yaml

from xgen_declare.inventory.file import load_inventory_file

GPU_KEYS = {"index", "vendor", "name", "type", "gfx", "integrated", "memory_total_mib", "memory_free_mib", "uuid",
            "pci_bus_id"}
ALL = ["llama-server-vulkan", "llama-server-cuda", "llama-server-rocm", "llama-server-cpu", "llama-cpp-python",
       "vllm-cuda", "vllm-rocm", "vllm-cpu"]


@pytest.fixture
def on_path(monkeypatch, fake_bin):
    def set_path(*sets):
        monkeypatch.setenv("PATH", fake_bin(*sets))
    return set_path


def test_done_when_strix_halo_gpus_json(cli, sysfs):
    r = cli("gpus", "-o", "json", "--sysfs-root", str(sysfs / "strix-halo"))
    assert r.code == 0
    (gpu,) = r.json()
    assert GPU_KEYS <= set(gpu)
    assert (gpu["gfx"], gpu["integrated"], gpu["type"], gpu["vendor"], gpu["index"]) == (
        "gfx1151", True, "amd_rdna", "amd", 0)


def test_global_options_before_the_verb_and_from_env(cli, sysfs, monkeypatch):
    root = str(sysfs / "rx6800")
    assert cli("--sysfs-root", root, "--proc-root", root + "/proc", "gpus", "-o", "json").json()[0]["gfx"] == "gfx1030"
    monkeypatch.setenv("XGEN_SYSFS_ROOT", str(sysfs / "2xmi300x"))
    assert [g["gfx"] for g in cli("gpus", "-o", "json").json()] == ["gfx942", "gfx942"]


def test_cpu_only_gpus_json_is_an_empty_list(cli, sysfs):
    r = cli("gpus", "-o", "json", "--sysfs-root", str(sysfs / "cpu-only"))
    assert (r.code, r.json(), r.out.strip()) == (0, [], "[]")


def test_mixed_box_with_fake_nvidia_smi_on_path(cli, sysfs, on_path):
    on_path("nvidia-a100")
    gpus = cli("gpus", "-o", "json", "--sysfs-root", str(sysfs / "mixed")).json()
    assert [(g["index"], g["vendor"], g["type"]) for g in gpus] == [(0, "nvidia", "nvidia"), (1, "amd", "amd_rdna")]
    assert gpus[0]["uuid"] == "GPU-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" and gpus[0]["gfx"] is None


def test_gpus_table_sends_warnings_to_stderr(cli, sysfs):
    r = cli("gpus", "--sysfs-root", str(sysfs / "malformed"))
    assert r.code == 0
    assert r.out.splitlines()[0].split()[:4] == ["INDEX", "VENDOR", "TYPE", "GFX"]
    assert "gfx1250" in r.out and "warning" not in r.out
    assert f"warning: {sysfs}/malformed/class/kfd/kfd/topology/nodes/2/properties: no simd_count" in r.err


def test_gpus_json_keeps_stdout_clean_of_warnings(cli, sysfs):
    r = cli("gpus", "-o", "json", "--sysfs-root", str(sysfs / "malformed"))
    assert len(r.json()) == 3 and "warning:" in r.err


def test_backends_json_contract(cli, sysfs, on_path):
    on_path("llama-cpu")
    r = cli("backends", "-o", "json", "--sysfs-root", str(sysfs / "cpu-only"))
    assert r.code == 0
    rows = r.json()
    assert [b["name"] for b in rows] == ALL
    assert all(set(b) == {"name", "available", "binary", "reason"} for b in rows)
    by = {b["name"]: b for b in rows}
    assert by["llama-server-cpu"]["available"] is True
    for name in ("llama-server-vulkan", "llama-server-cuda", "llama-server-rocm", "vllm-cuda", "vllm-rocm"):
        assert by[name]["available"] is False and by[name]["reason"]


def test_backends_table(cli, sysfs, on_path):
    on_path("vllm")
    r = cli("--sysfs-root", str(sysfs / "rx6800"), "backends")
    assert r.code == 0
    line = next(ln for ln in r.out.splitlines() if ln.startswith("vllm-rocm"))
    assert "gfx1030 not in vLLM ROCm allow-list" in line


def test_backends_reads_binaries_from_the_config(cli, sysfs, tmp_path, fake_bin):
    cfg = tmp_path / "xgen-declare.yaml"
    cfg.write_text(f"binaries:\n  vllm-cpu: {fake_bin('vllm')}/vllm\n")
    rows = cli("backends", "-o", "json", "--config", str(cfg), "--sysfs-root", str(sysfs / "cpu-only")).json()
    assert next(b for b in rows if b["name"] == "vllm-cpu")["available"] is True


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("name, bins", [("strix-halo", ("llama-gpu-named", "vllm")), ("mixed", ("nvidia-a100",
                                        "llama-cuda", "vllm")), ("malformed", ()), ("cpu-only", ("llama-cpu",))])
def test_inventory_round_trips_through_inventory_file(cli, sysfs, on_path, tmp_path, fmt, name, bins):
    on_path(*bins)
    root = str(sysfs / name)
    r = cli("inventory", "-o", fmt, "--sysfs-root", root, "--proc-root", root + "/proc")
    assert r.code == 0
    data = yaml.safe_load(r.out) if fmt == "yaml" else json.loads(r.out)
    assert data["kind"] == "Inventory" and data["apiVersion"] == "xgen/v1"
    path = tmp_path / f"host.{fmt}"
    path.write_text(r.out)
    inv = load_inventory_file(str(path))
    assert inv.model_dump(mode="json") == data
    assert [b.name for b in inv.backends] == ALL


def test_inventory_warnings_are_in_the_document(cli, sysfs):
    r = cli("inventory", "--sysfs-root", str(sysfs / "malformed"))
    doc = yaml.safe_load(r.out)
    assert any("no simd_count" in w for w in doc["warnings"])
    assert "detection warning(s)" in r.err


def test_example_inventory_files_load(cli):
    from pathlib import Path
    root = Path(__file__).resolve().parents[3] / "examples" / "inventories"
    strix = load_inventory_file(str(root / "strix-halo.yaml"))
    assert strix.gpus[0].gfx == "gfx1151" and strix.gpus[0].integrated
    a100 = load_inventory_file(str(root / "2xa100.yaml"))
    assert [g.vendor for g in a100.gpus] == ["nvidia", "nvidia"] and a100.is_available("vllm-cuda")


def test_inventory_yaml_reads_back_exactly(cli, monkeypatch, tmp_path):
    """A name PyYAML would write raw and a reader fold (U+0085 NEL) is escaped, not changed."""
    from pathlib import Path

    from xgen_declare.cli import inventory as inventory_cli

    example = Path(__file__).resolve().parents[3] / "examples" / "inventories" / "2xa100.yaml"
    inv = load_inventory_file(str(example))
    inv.gpus[0].name = "NVIDIA\x85A100"
    monkeypatch.setattr(inventory_cli, "host_inventory", lambda *a: inv)
    r = cli("inventory")
    assert r.code == 0, r.err
    path = tmp_path / "host.yaml"
    path.write_text(r.out)
    assert load_inventory_file(str(path)).gpus[0].name == "NVIDIA\x85A100"


def test_the_snapshot_carries_arch_and_the_configs_labels_for_plan_inventory(cli, sysfs, tmp_path):
    import platform
    cfg = tmp_path / "xgen-declare.yaml"
    cfg.write_text("host:\n  labels: {site: lab-2, tier: 3}\n")
    r = cli("--config", str(cfg), "inventory", "-o", "yaml", "--sysfs-root", str(sysfs / "2xmi300x"))
    assert r.code == 0, r.err
    data = yaml.safe_load(r.out)
    assert (data["arch"], data["labels"]) == (platform.machine(), {"site": "lab-2", "tier": "3"})
    snap = tmp_path / "host.yaml"
    snap.write_text(r.out)
    assert load_inventory_file(str(snap)).labels == {"site": "lab-2", "tier": "3"}  # reads back as printed
