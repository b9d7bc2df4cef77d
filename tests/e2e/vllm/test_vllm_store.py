"""Real vLLM (CPU) serving a tiny HF model that the daemon fetched from the fake hub into the store (issue 23):
a manifest with `source: hf://org/tiny@COMMIT` and the vllm-cpu backend, `xgen-declare run` fetches the repo
(config.json, safetensors, tokenizer files) through the real huggingface_hub client into the store, then starts
`vllm serve STORE/models--org--tiny/snapshots/COMMIT` with `--served-model-name` unchanged (the model's name,
its alias, and the hub id it would have without the store). HF_HUB_OFFLINE=1 in the backend's env, and no
request reaching the hub once the fetch is done, show vLLM downloaded nothing.

Skipped (with the reason) when vLLM is missing, failed when CI is set (conftest). Every wait is bounded; the
daemon and everything it started are swept at the end (daemon_factory), even on failure.
"""

from __future__ import annotations

import json
import textwrap

import httpx
import psutil
import pytest

from tests.e2e.vllm.test_vllm_cpu import COMMON_SPEC, READY_TIMEOUT
from xgen_declare.testing.fakehub import FakeHub
from xgen_declare.testing.harness import free_port_block

pytestmark = [pytest.mark.e2e, pytest.mark.vllm]

REPO = "org/tiny"


def test_vllm_serves_a_hub_model_the_daemon_fetched_into_the_store(vllm_binary, tiny_hf_model, daemon_factory,
                                                                   tmp_path, monkeypatch):
    files = {str(p.relative_to(tiny_hf_model)): p.read_bytes() for p in sorted(tiny_hf_model.rglob("*"))
             if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files), sorted(files)
    d = tmp_path / "manifests"
    d.mkdir()
    port = free_port_block(4)
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: {port}, end: {port + 3}}}
        binaries: {{vllm-cpu: {json.dumps(vllm_binary)}}}
        store: {{dir: ../store, min_free: 0}}
        """))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the daemon fetches; the backend's env turns it on
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no cache of the caller's to find the model in
    with FakeHub() as hub:
        commit = hub.add_repo(REPO, files)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        spec = textwrap.indent(COMMON_SPEC.strip("\n") + "\nalias: [tiny-alias]\nready_timeout: 300\nstop_grace: 15\n",
                               "  ")
        (d / "tiny.yaml").write_text(f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: tiny}}\nspec:\n"
                                     f"  source: hf://{REPO}@{commit}\n  backend: vllm-cpu\n{spec}")
        daemon = daemon_factory(d)
        daemon.start()
        # the fetch is done once the process is spawned: from then on nothing may ask the hub
        daemon.wait(lambda s: s.get("tiny", {}).get("pid"), 120, "tiny started after its fetch")
        asked = len(hub.requests)
        st = daemon.wait_ready(["tiny"], timeout=READY_TIMEOUT)["tiny"]
        snapshot = tmp_path / "store" / "models--org--tiny" / "snapshots" / commit
        for name, data in files.items():
            assert (snapshot / name).read_bytes() == data, name
        assert sum(hub.bytes_served(REPO, name) for name in files) >= sum(len(b) for b in files.values())

        rec = json.loads((tmp_path / "state" / "models" / "tiny.json").read_text())
        argv = rec["argv"]
        assert argv[0] == vllm_binary and argv[1:3] == ["serve", str(snapshot)], argv
        i = argv.index("--served-model-name")
        assert argv[i + 1:i + 4] == ["tiny", "tiny-alias", REPO], argv

        assert psutil.Process(st["pid"]).environ().get("HF_HUB_OFFLINE") == "1"  # the manifest's env reached vLLM
        assert st["endpoint"] == f"http://127.0.0.1:{port}/v1", st  # the port the config's range starts with
        with httpx.Client(base_url=st["endpoint"], timeout=60) as c:  # the paths below are under /v1
            assert {m["id"] for m in c.get("/models").json()["data"]} == {"tiny", "tiny-alias", REPO}
            r = c.post("/chat/completions", json={"model": "tiny", "max_tokens": 4,
                                                     "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["usage"]["completion_tokens"] >= 1 and body["choices"][0]["message"]["role"] == "assistant"
            r = c.post("/completions", json={"model": REPO, "prompt": "Hello", "max_tokens": 4})
            assert r.status_code == 200 and r.json()["choices"][0]["text"], r.text
        assert hub.requests[asked:] == [], "the backend asked the hub for something"
