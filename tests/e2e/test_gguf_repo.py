"""A model_path that is a HuggingFace repository of GGUF files (`org/x-GGUF:Q8_0`, or `org/x-GGUF` with
`hf_file`), served by the real llama-server. Since issue 23 such a model_path is the implied source
hf://ORG/REPO[:QUANT|/FILE]: `render` still previews llama.cpp's own download flags (--hf-repo / --hf-file,
LLAMA_CACHE from llama_cache_dir), but the daemon fetches the file from the hub (the fake hub here, through the
real huggingface_hub client) into the store and starts llama-server on the local file (`--model`), never
--hf-repo."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from tests.e2e.test_cpu_backends import complete
from xgen_declare.testing.fakehub import FakeHub

pytest.importorskip("huggingface_hub")


def test_repository_is_fetched_into_the_store_and_served_by_llama_server(tmp_path, tiny_models, llama_server_binary,
                                                                          daemon_factory, monkeypatch):
    cache = tmp_path / "gguf-cache"
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: 18470, end: 18479}}
        binaries: {{llama-server-cpu: {json.dumps(llama_server_binary)}}}
        python: {json.dumps(sys.executable)}
        llama_cache_dir: ../gguf-cache
        store: {{dir: ../gguf-cache, min_free: 0}}
        """))
    for name, extra in (("tagged", "model_path: xgen/tiny-GGUF:Q8_0"),
                        ("by-file", "model_path: xgen/tiny-GGUF\n  hf_file: tiny-F16.gguf")):
        (d / f"{name}.yaml").write_text(
            f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n  {extra}\n"
            "  backend: llama-server-cpu\n  ctx_size: 256\n  threads: 1\n  ready_timeout: 60\n  stop_grace: 5\n")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    data = tiny_models["chat"].read_bytes()
    with FakeHub() as hub:
        commit = hub.add_repo("xgen/tiny-GGUF", {"tiny-Q8_0.gguf": data, "tiny-F16.gguf": data, "README.md": b"x\n"})
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        daemon = daemon_factory(d)
        r = daemon.cli("render", str(d), "-o", "json")  # a preview: the hub id as llama.cpp would download it
        assert r.returncode == 0, r.stderr
        rendered = {m["name"]: m for m in json.loads(r.stdout)}
        assert rendered["tagged"]["argv"][1:3] == ["--hf-repo", "xgen/tiny-GGUF:Q8_0"]
        assert rendered["by-file"]["argv"][1:5] == ["--hf-repo", "xgen/tiny-GGUF", "--hf-file", "tiny-F16.gguf"]
        assert rendered["tagged"]["env"]["LLAMA_CACHE"] == str(cache)
        assert rendered["by-file"]["source"] == "hf://xgen/tiny-GGUF/tiny-F16.gguf"
        daemon.start()
        st = daemon.wait_ready(["tagged", "by-file"], timeout=120)
        assert hub.bytes_served("xgen/tiny-GGUF", "tiny-Q8_0.gguf") + \
            hub.bytes_served("xgen/tiny-GGUF", "tiny-F16.gguf") == len(data)  # one blob: fetched once
    snapshot = cache / "models--xgen--tiny-GGUF" / "snapshots" / commit
    for name, file in (("tagged", "tiny-Q8_0.gguf"), ("by-file", "tiny-F16.gguf")):
        assert complete(st[name]["endpoint"])["usage"]["completion_tokens"] >= 1
        argv = json.loads((tmp_path / "state" / "models" / f"{name}.json").read_text())["argv"]
        assert "--hf-repo" not in argv and argv[argv.index("--model") + 1] == str(snapshot / file), argv
