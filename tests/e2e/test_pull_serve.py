"""The real llama-server serves a GGUF fetched from the fake hub (the real huggingface_hub client) into the
store (issue 23): by the daemon itself (Downloading, then `--model STORE/.../snapshots/COMMIT/FILE`, never
--hf-repo), or by `xgen-declare pull` beforehand, with the hub gone by the time the daemon starts (the
store's ref is used: a hub outage never keeps a model whose files are there from starting)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from tests.e2e.test_cpu_backends import complete
from xgen_declare.testing.fakehub import FakeHub

pytest.importorskip("huggingface_hub")


def test_a_pulled_gguf_is_served_by_llama_server(cli, tmp_path, tiny_models, llama_server_binary, daemon_factory,
                                                 monkeypatch):
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: 18480, end: 18489}}
        binaries: {{llama-server-cpu: {json.dumps(llama_server_binary)}}}
        python: {json.dumps(sys.executable)}
        store: {{dir: ../store, min_free: 0}}
        llama_cache_dir: ../store
        """))
    (d / "tiny.yaml").write_text(
        "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: tiny}\nspec:\n"
        "  source: hf://xgen/tiny-GGUF/tiny-Q8_0.gguf\n  backend: llama-server-cpu\n  ctx_size: 256\n"
        "  threads: 1\n  ready_timeout: 60\n  stop_grace: 5\n  extra_args: [--offline]\n")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as hub:
        hub.add_repo("xgen/tiny-GGUF", {"tiny-Q8_0.gguf": tiny_models["chat"].read_bytes(), "README.md": b"x\n"})
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        r = cli("pull", str(d), "--state-dir", str(tmp_path / "state"))
        assert r.code == 0, r.out + r.err
        commit = hub.repos["xgen/tiny-GGUF"].refs["main"]
    path = tmp_path / "store" / "models--xgen--tiny-GGUF" / "snapshots" / commit / "tiny-Q8_0.gguf"
    assert path.read_bytes() == tiny_models["chat"].read_bytes()
    daemon = daemon_factory(d)
    daemon.start()
    st = daemon.wait_ready(["tiny"], timeout=120)
    assert complete(st["tiny"]["endpoint"])["usage"]["completion_tokens"] >= 1
    rec = json.loads((tmp_path / "state" / "models" / "tiny.json").read_text())
    assert str(path) in rec["argv"] and "--hf-repo" not in rec["argv"]


def test_the_daemon_fetches_a_gguf_that_llama_server_then_serves(tmp_path, tiny_models, llama_server_binary,
                                                                  daemon_factory, monkeypatch):
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: 18490, end: 18499}}
        binaries: {{llama-server-cpu: {json.dumps(llama_server_binary)}}}
        store: {{dir: ../store, min_free: 0}}
        """))
    (d / "tiny.yaml").write_text(
        "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: tiny}\nspec:\n"
        "  source: hf://xgen/tiny-GGUF:Q8_0\n  backend: llama-server-cpu\n  ctx_size: 256\n"
        "  threads: 1\n  ready_timeout: 60\n  stop_grace: 5\n")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    data = tiny_models["chat"].read_bytes()
    with FakeHub() as hub:
        hub.add_repo("xgen/tiny-GGUF", {"tiny-Q8_0.gguf": data, "tiny-Q4_K_M.gguf": b"other", "README.md": b"x\n"})
        hub.faults.rate = len(data) / 3  # ~3 s: Downloading is seen
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        daemon = daemon_factory(d)
        daemon.start()
        daemon.wait(lambda s: s.get("tiny", {}).get("state") == "Downloading"
                    and (s["tiny"].get("download") or {}).get("total") == len(data),
                    30, "tiny Downloading")
        st = daemon.wait_ready(["tiny"], timeout=120)
        commit = hub.repos["xgen/tiny-GGUF"].refs["main"]
        assert hub.bytes_served("xgen/tiny-GGUF", "tiny-Q8_0.gguf") == len(data)
        assert hub.bytes_served("xgen/tiny-GGUF", "tiny-Q4_K_M.gguf") == 0
    path = tmp_path / "store" / "models--xgen--tiny-GGUF" / "snapshots" / commit / "tiny-Q8_0.gguf"
    rec = json.loads((tmp_path / "state" / "models" / "tiny.json").read_text())
    assert rec["argv"][rec["argv"].index("--model") + 1] == str(path) and "--hf-repo" not in rec["argv"]
    assert complete(st["tiny"]["endpoint"])["usage"]["completion_tokens"] >= 1


def test_llama_cpp_python_serves_a_gguf_repository_the_daemon_fetched(tmp_path, tiny_models, llama_cpp_python,
                                                                       daemon_factory, monkeypatch):
    """llama-cpp-python downloads nothing itself: a model_path naming a GGUF repository (an implied source)
    is fetched into the store and llama-cpp-python is started with --model on the fetched file."""
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: 18500, end: 18509}}
        python: {json.dumps(llama_cpp_python)}
        store: {{dir: ../store, min_free: 0}}
        """))
    (d / "tiny.yaml").write_text(
        "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: tiny}\nspec:\n"
        "  model_path: xgen/tiny-GGUF:Q8_0\n  backend: llama-cpp-python\n  ctx_size: 256\n"
        "  threads: 1\n  ready_timeout: 60\n  stop_grace: 5\n")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    data = tiny_models["chat"].read_bytes()
    with FakeHub() as hub:
        hub.add_repo("xgen/tiny-GGUF", {"tiny-Q8_0.gguf": data, "tiny-Q4_K_M.gguf": b"other", "README.md": b"x\n"})
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        daemon = daemon_factory(d)
        daemon.start()
        st = daemon.wait_ready(["tiny"], timeout=120)
        commit = hub.repos["xgen/tiny-GGUF"].refs["main"]
        assert hub.bytes_served("xgen/tiny-GGUF", "tiny-Q8_0.gguf") == len(data)
    path = tmp_path / "store" / "models--xgen--tiny-GGUF" / "snapshots" / commit / "tiny-Q8_0.gguf"
    rec = json.loads((tmp_path / "state" / "models" / "tiny.json").read_text())
    assert rec["argv"][1:3] == ["-m", "llama_cpp.server"]
    assert rec["argv"][rec["argv"].index("--model") + 1] == str(path)
    assert complete(st["tiny"]["endpoint"])["usage"]["completion_tokens"] >= 1
