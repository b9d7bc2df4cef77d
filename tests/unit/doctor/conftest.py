"""Fake hosts for `doctor`: the sysfs trees and fake binaries of tests/fixtures, a device root and a proc
root in the test's temp dir, and the seams of DoctorHost. No test touches the real GPUs, NVML or PATH."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import clear_probe_caches, isolate_host
from xgen_declare.doctor import DoctorHost, run_doctor
from xgen_declare.doctor import backends as doctor_backends

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(autouse=True)
def isolated_host(monkeypatch, tmp_path):
    isolate_host(monkeypatch, tmp_path, unset=("XGEN_STATE_DIR", "XGEN_DEV_ROOT"))
    doctor_backends._vllm_cache.clear()
    yield
    clear_probe_caches()


class FakeHost:
    """One fake host per test: `run()` -> findings; attributes say what the host looks like."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.sysfs = FIXTURES / "sysfs" / "rx6800"
        self.bins = ["llama-cpu"]
        self.dev = tmp_path / "dev"
        for node in ("kfd", "dri/renderD128"):  # plain files: opening them read-write works like a device
            (self.dev / node).parent.mkdir(parents=True, exist_ok=True)
            (self.dev / node).write_text("")
        self.proc = tmp_path / "proc"
        shutil.copytree(self.sysfs / "proc", self.proc)
        (self.proc / "sys/fs/inotify").mkdir(parents=True)
        (self.proc / "sys/fs/inotify/max_user_watches").write_text("8192\n")
        (self.proc / "sys/fs/inotify/max_user_instances").write_text("128\n")
        (self.proc / "sys/net/ipv4").mkdir(parents=True)
        (self.proc / "sys/net/ipv4/ip_local_port_range").write_text("32768\t60999\n")
        self.state = tmp_path / "state"
        self.manifests = tmp_path / "manifests"
        self.manifests.mkdir()
        self.config: Path | None = None
        self.holders: dict[int, int | None] = {}
        self.seams: dict = {"port_holders": lambda: self.holders}

    def manifest(self, name: str, **spec) -> Path:
        spec.setdefault("model_path", "/models/x.gguf")
        body = "\n".join(f"  {k}: {v}" for k, v in spec.items())
        path = self.manifests / f"{name}.yaml"
        path.write_text(f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n{body}\n")
        return path

    def write_config(self, text: str) -> Path:
        self.config = self.manifests / "xgen-declare.yaml"
        self.config.write_text(textwrap.dedent(text).lstrip())
        return self.config

    def path(self) -> str:
        return os.pathsep.join(str(FIXTURES / "bin" / b) for b in self.bins)

    def run(self, dirs: list[str] | None = None):
        host = DoctorHost(sysfs_root=str(self.sysfs), proc_root=str(self.proc), dev_root=str(self.dev),
                          path=self.path(), env={}, **self.seams)
        return run_doctor([str(self.manifests)] if dirs is None else dirs, config_path=None,
                          resolve_state_dir=lambda _config: str(self.state), host=host)


@pytest.fixture
def fake_host(tmp_path):
    return FakeHost(tmp_path)


def lines(findings, status: str | None = None) -> list[tuple[str, str, str]]:
    """(status, check, message) of each finding (of one status)."""
    return [(f.status, f.check, f.message) for f in findings if status is None or f.status == status]
