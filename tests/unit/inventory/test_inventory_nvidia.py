import time
from types import SimpleNamespace

import pytest

from xgen_declare.inventory import nvidia
from xgen_declare.inventory.nvidia import detect_nvidia, normalise_pci_bus_id, parse_smi_csv


class FakeNvml:
    """The slice of pynvml detection uses; GPUs as dicts, `broken` indices raise."""

    def __init__(self, gpus, broken=(), init_error=None):
        self.gpus, self.broken, self.init_error = gpus, set(broken), init_error
        self.shutdown = False

    def nvmlInit(self):
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        if i in self.broken:
            raise RuntimeError("GPU is lost")
        return self.gpus[i]

    def nvmlDeviceGetName(self, h):
        return h["name"]

    def nvmlDeviceGetUUID(self, h):
        return h["uuid"]

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=h["bus"])

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=h["total"] * 2**20, free=h["free"] * 2**20, used=0)

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return (9, 0)


H100 = {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-h100", "bus": b"00000000:9A:00.0", "total": 81559,
        "free": 81000}


def test_nvml_first():
    fake = FakeNvml([H100])
    warnings = []
    gpus, source = detect_nvidia(warnings, path="", nvml_loader=lambda: fake)
    assert source == "nvml" and warnings == [] and fake.shutdown
    (g,) = gpus
    assert (g.name, g.uuid, g.pci_bus_id, g.memory_total_mib, g.memory_free_mib) == (
        "NVIDIA H100 80GB HBM3", "GPU-h100", "0000:9a:00.0", 81559, 81000)
    assert (g.compute_capability, g.driver_version, g.type, g.vendor) == ("9.0", "550.54.15", "nvidia", "nvidia")


def test_nvml_device_error_is_a_warning_and_the_rest_is_kept():
    warnings = []
    gpus, _ = detect_nvidia(warnings, path="", nvml_loader=lambda: FakeNvml([H100, H100], broken={0}))
    assert len(gpus) == 1
    assert warnings == ["NVML: GPU 0: GPU is lost; skipped"]


@pytest.mark.parametrize("loader", [
    lambda: FakeNvml([], init_error=RuntimeError("NVML Shared Library Not Found")),
    lambda: (_ for _ in ()).throw(ImportError("no pynvml")),
])
def test_nvidia_smi_when_nvml_cannot_initialise(loader, fake_bin):
    warnings = []
    gpus, source = detect_nvidia(warnings, path=fake_bin("nvidia-a100"), nvml_loader=loader)
    assert source == "nvidia-smi" and warnings == []
    (g,) = gpus
    assert (g.name, g.uuid, g.pci_bus_id, g.memory_total_mib, g.memory_free_mib, g.driver_version) == (
        "NVIDIA A100-SXM4-80GB", "GPU-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "0000:41:00.0", 81920, 80500,
        "550.54.15")


def test_no_nvml_no_smi_is_quietly_nothing():
    warnings = []
    assert detect_nvidia(warnings, path="") == ([], None)
    assert warnings == []


def test_smi_garbage_keeps_good_lines_and_warns(fake_bin):
    warnings = []
    gpus, _ = detect_nvidia(warnings, path=fake_bin("nvidia-garbage"))
    (g,) = gpus
    assert (g.name, g.pci_bus_id, g.memory_total_mib, g.memory_free_mib) == ("Tesla T4", "0000:00:1e.0", None, 15000)
    smi = fake_bin("nvidia-garbage") + "/nvidia-smi"
    assert warnings == [
        f"{smi}: line 1: unexpected output \"NVIDIA-SMI has failed because it couldn't communicate with the "
        "NVIDIA driver.\"; ignored",
        f"{smi}: line 2: 'lots' is not a number",
        f"{smi}: line 3: unexpected output '%%%%'; ignored",
    ]


def test_smi_not_available_fields(fake_bin):
    warnings = []
    (g,), _ = detect_nvidia(warnings, path=fake_bin("nvidia-na"))
    assert (g.uuid, g.memory_total_mib, g.memory_free_mib, g.driver_version) == (None, None, None, None)
    assert g.name == "NVIDIA GeForce RTX 4090" and warnings == []


def test_smi_that_hangs_is_timed_out(fake_bin):
    warnings = []
    start = time.monotonic()
    gpus, source = detect_nvidia(warnings, path=fake_bin("nvidia-hang"), smi_timeout=0.3)
    assert time.monotonic() - start < 5
    assert (gpus, source) == ([], None)
    assert warnings == [f"{fake_bin('nvidia-hang')}/nvidia-smi: timed out after 0.3s; NVIDIA GPUs not detected"]


def test_smi_module_timeout_default_is_injectable(monkeypatch, fake_bin):
    monkeypatch.setattr(nvidia, "SMI_TIMEOUT_S", 0.2)
    warnings = []
    detect_nvidia(warnings, path=fake_bin("nvidia-hang"))
    assert "timed out after 0.2s" in warnings[0]


def test_parse_smi_csv_empty_output_is_no_gpu():
    assert parse_smi_csv("\n\n", "nvidia-smi", []) == []


@pytest.mark.parametrize("raw, norm", [
    ("00000000:3B:00.0", "0000:3b:00.0"), ("0000:3b:00.0", "0000:3b:00.0"), ("00000001:C1:1F.7", "0001:c1:1f.7"),
    ("[N/A]", None), ("", None), (None, None), ("3b:00.0", None),
])
def test_normalise_pci_bus_id(raw, norm):
    assert normalise_pci_bus_id(raw) == norm
