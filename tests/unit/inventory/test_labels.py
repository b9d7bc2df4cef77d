"""A host's labels (inventory/labels.py): detected from the inventory, the config's `host: labels:` over them."""

from __future__ import annotations

import pytest

from xgen_declare.config import load_config
from xgen_declare.errors import ConfigError
from xgen_declare.inventory.labels import detected_labels, host_labels
from xgen_declare.inventory.model import Gpu, Inventory


def gpu(index: int, vendor: str, name: str, mib: int | None, hidden: bool = False) -> Gpu:
    kind = "nvidia" if vendor == "nvidia" else "amd_cdna"
    return Gpu(index=index, vendor=vendor, name=name, type=kind, memory_total_mib=mib, hidden=hidden)


def test_a_gpu_host():
    inv = Inventory(hostname="mi300x-1", gpus=[gpu(0, "amd", "AMD Instinct MI300X", 196592),
                                                gpu(1, "amd", "AMD Instinct MI300X", 196000)])
    assert detected_labels(inv, "x86_64") == {"arch": "x86_64", "hostname": "mi300x-1", "gpu.count": "2",
                                              "gpu.vendor": "amd", "gpu.model": "AMD Instinct MI300X",
                                              "gpu.memory_gib": "191"}


def test_no_gpu_hidden_gpus_mixed_vendors_and_unknown_memory():
    assert detected_labels(Inventory(), "aarch64") == {"arch": "aarch64", "gpu.count": "0"}
    hidden = Inventory(gpus=[gpu(0, "nvidia", "A100", 81920, hidden=True)])
    assert detected_labels(hidden, "x86_64") == {"arch": "x86_64", "gpu.count": "0"}
    mixed = Inventory(gpus=[gpu(0, "nvidia", "RTX 4090", 24564), gpu(1, "amd", "", None)])
    assert detected_labels(mixed, "x86_64") == {"arch": "x86_64", "gpu.count": "2", "gpu.vendor": "mixed",
                                                "gpu.model": "RTX 4090"}


def test_configured_labels_are_added_and_win(tmp_path):
    path = tmp_path / "xgen-declare.yaml"
    path.write_text("host:\n  labels: {site: lab-2, gpu.count: 1, spot: true}\n")
    cfg = load_config(str(path))
    assert cfg.host.labels == {"site": "lab-2", "gpu.count": "1", "spot": "true"}
    inv = Inventory(hostname="h", gpus=[gpu(0, "nvidia", "A100", 81920), gpu(1, "nvidia", "A100", 81920)])
    assert host_labels(inv, "x86_64", cfg.host.labels) == {"arch": "x86_64", "hostname": "h", "gpu.count": "1",
                                                           "gpu.vendor": "nvidia", "gpu.model": "A100",
                                                           "gpu.memory_gib": "80", "site": "lab-2", "spot": "true"}


def test_a_bad_configured_label_names_the_field(tmp_path):
    path = tmp_path / "xgen-declare.yaml"
    path.write_text("host:\n  labels: {'bad key': x}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(err.value) == (f"{path}:2: host.labels: 'bad key' is not a label key (letters, digits and . _ / -, "
                              "starting and ending with a letter or digit, at most 253 characters) (e.g. labels: "
                              "{site: lab-2, tier: prod})")
