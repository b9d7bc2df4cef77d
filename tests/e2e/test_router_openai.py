"""The official `openai` client against the router of `run --api`: two real llama-server models (the
tiny generated GGUF) through one base URL, one of them on-demand (Idle until the first request, Idle
again after idle_timeout)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.test_cpu_backends import manifest, write_config
from xgen_declare.testing.harness import free_port, free_port_block

openai = pytest.importorskip("openai")


def test_openai_client_two_models_one_url_on_demand_start_and_idle(tmp_path, tiny_models, llama_server_binary,
                                                                   daemon_factory):
    d = tmp_path / "manifests"
    d.mkdir()
    write_config(d, llama_server_binary, free_port_block(20))
    (d / "chat.yaml").write_text(manifest("chat", tiny_models["chat"], "llama-server-cpu"))
    lazy = manifest("lazy", tiny_models["chat"], "llama-server-cpu") + "  activation: on-demand\n  idle_timeout: 3s\n"
    (d / "lazy.yaml").write_text(lazy)
    daemon = daemon_factory(d)
    daemon.env["XGEN_API_TOKEN"] = "router-token"
    port = free_port()
    daemon.start("--api", "--api-port", str(port))
    st = daemon.wait(lambda s: s.get("chat", {}).get("state") == "Ready" and s.get("lazy", {}).get("state") == "Idle",
                     what="chat Ready, lazy Idle")
    assert st["lazy"]["pid"] is None

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="router-token", max_retries=0)
    listed = {m.id: m.model_extra["state"] for m in client.models.list()}
    assert listed == {"chat": "Ready", "lazy": "Idle"}

    stream = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}],
                                            max_tokens=8, stream=True)
    chunks = list(stream)
    assert len(chunks) >= 2 and chunks[-1].choices[0].finish_reason in ("length", "stop")
    assert any(c.choices and c.choices[0].delta.content for c in chunks)

    t0 = time.monotonic()
    answer = client.chat.completions.create(model="lazy", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    cold = time.monotonic() - t0
    assert answer.choices[0].message.content is not None and answer.usage.completion_tokens >= 1
    assert daemon.status()["lazy"]["state"] == "Ready"
    st = daemon.wait(lambda s: s["lazy"]["state"] == "Idle", timeout=30, what="lazy Idle after idle_timeout")
    assert st["lazy"]["pid"] is None and st["chat"]["state"] == "Ready"

    with pytest.raises(openai.NotFoundError, match="known models: chat, lazy"):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).models.list()
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'xgen_router_cold_start_seconds_count{model="lazy"} 1.0' in metrics
    print(f"cold start of lazy through the router: {cold:.2f}s")
