"""`xgen-declare pull` fetches a GGUF from the fake hub (the real huggingface_hub client), and the real
llama-server serves that very file: until the store is wired into the daemon (issue 23), a file source runs
as --hf-repo/--hf-file, and with `llama_cache_dir` set to the store and --offline llama.cpp reads the
store's HuggingFace-cache layout (refs/main -> snapshots/COMMIT/FILE) that pull wrote, downloading nothing."""

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
        store: {{dir: ../store}}
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
