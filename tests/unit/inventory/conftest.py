"""Fake hosts for inventory tests: sysfs/proc trees under tests/fixtures/sysfs/<host>/ (proc in <host>/proc)
and fake executables under tests/fixtures/bin/<set>/. No test touches the real GPUs, NVML or PATH."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import clear_probe_caches, isolate_host
from xgen_declare.config import Config
from xgen_declare.inventory.host import detect_host

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SYSFS = FIXTURES / "sysfs"
BIN = FIXTURES / "bin"


@pytest.fixture(autouse=True)
def isolated_host(monkeypatch, tmp_path):
    isolate_host(monkeypatch, tmp_path)
    yield
    clear_probe_caches()


def bin_path(*sets: str) -> str:
    return os.pathsep.join(str(BIN / s) for s in sets)


def host(name: str, *bin_sets: str, config: Config | None = None, env: dict | None = None, **kwargs):
    """Detect the fake host `name` with only the given fake binary sets on PATH."""
    root = SYSFS / name
    return detect_host(config or Config(), sysfs_root=str(root), proc_root=str(root / "proc"),
                       path=bin_path(*bin_sets), env=env or {}, **kwargs)


@pytest.fixture(name="host")
def host_fixture():
    """host(name, *bin_sets, config=, env=, **detect_kwargs) -> Inventory of a fake host."""
    return host


@pytest.fixture
def sysfs():
    return SYSFS


@pytest.fixture
def fake_bin():
    """fake_bin(*sets) -> a PATH string holding only those fixture sets of fake executables."""
    return bin_path
