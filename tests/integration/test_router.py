"""The /v1 router of `run --api` with the fake backend: routing by name and alias, streaming pass-through
(chunk order and timing), the router's token, per-model api keys injected upstream, client disconnect,
a backend dying mid-stream."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from xgen_declare.testing.harness import free_port

from .conftest import FAST, manifest

FAST_RESYNC = FAST["resync_interval"]


def start_router(host, token: str | None = None) -> str:
    if token:
        host.env["XGEN_API_TOKEN"] = token
    port = free_port()
    host.start_daemon("--api", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/metrics", timeout=1)
            return base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("API did not come up:\n" + host.daemon_log()[-3000:])


def sse_events(lines) -> list[dict]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]


def chat(base: str, model: str, token: str | None = None, **extra) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(base + "/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], **extra})


def test_routes_by_name_and_alias_streams_in_order_and_injects_keys(host, tmp_path):
    key = tmp_path / "b.key"
    key.write_text("backend-secret\n")
    host.write("a", manifest("a", alias=["gpt-a"], env={"FAKE_MODE": "chunks=4,chunk_delay=0.3"}))
    host.write("b", manifest("b", api_key_file=str(key)))
    base = start_router(host, token="tok")
    host.wait_ready("a", "b")

    assert chat(base, "a").status_code == 401
    r = chat(base, "a", token="wrong")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = chat(base, "a", token="tok")
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "a" and r.json()["choices"][0]["message"]["content"].startswith("fake a: chunk 0")
    assert chat(base, "gpt-a", token="tok").json()["model"] == "a"
    # b's backend wants its own key: the router sends it, the client only knows the router's token
    r = chat(base, "b", token="tok")
    assert r.status_code == 200 and r.json()["model"] == "b", r.text
    assert httpx.post(host_endpoint(host, "b") + "/chat/completions", json={"model": "b"}).status_code == 401
    auth = {"Authorization": "Bearer tok"}
    r = httpx.post(base + "/v1/completions", headers=auth, json={"model": "b", "prompt": "x"}, timeout=10)
    assert r.json()["object"] == "text_completion"
    r = httpx.post(base + "/v1/embeddings", headers=auth, json={"model": "gpt-a", "input": ["x", "y"]}, timeout=10)
    assert [d["index"] for d in r.json()["data"]] == [0, 1]

    models = httpx.get(base + "/v1/models", headers=auth).json()["data"]
    assert [(m["id"], m["state"], m["aliases"]) for m in models] == [("a", "Ready", ["gpt-a"]), ("b", "Ready", [])]
    r = chat(base, "nope", token="tok")
    assert r.status_code == 404 and r.json()["error"]["known"] == ["a", "b", "gpt-a"]

    # streaming: chunks in order, the first one long before the last is produced (no buffering)
    t0 = time.monotonic()
    arrivals, lines = [], []
    with httpx.stream("POST", base + "/v1/chat/completions", headers=auth, timeout=30,
                      json={"model": "gpt-a", "stream": True, "messages": []}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - t0)
                lines.append(line)
    events = sse_events(lines)
    texts = [e["choices"][0]["delta"].get("content") for e in events]
    assert texts == [f"fake a: chunk {i}. " for i in range(4)] + [None] and lines[-1] == "data: [DONE]"
    assert arrivals[0] < 0.6 and arrivals[-1] - arrivals[0] > 0.8, arrivals
    metrics = httpx.get(base + "/metrics").text
    assert 'xgen_router_requests_total{code="200",model="a"}' in metrics
    assert 'xgen_router_time_to_first_byte_seconds_count{model="a"}' in metrics
    assert 'xgen_router_in_flight{model="a"} 0.0' in metrics


def host_endpoint(host, name: str) -> str:
    return host.status()[name]["endpoint"]


def test_bad_input_client_disconnect_and_backend_dying_mid_stream(host):
    host.write("slow", manifest("slow", env={"FAKE_MODE": "chunks=50,chunk_delay=0.2"}))
    host.write("dies", manifest("dies", env={"FAKE_MODE": "die_mid_stream,chunk_delay=0.05"}))
    base = start_router(host)
    host.wait_ready("slow", "dies")

    r = httpx.post(base + "/v1/chat/completions", content=b'{"model": "slow",', timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(base + "/v1/chat/completions", json={"messages": []}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == {
        "message": "missing `model`: name the model to use (see GET /v1/models)", "type": "invalid_request_error",
        "param": "model", "code": "missing_model"}
    r = httpx.post(base + "/v1/embeddings", content=b'{"model": "slow", "input": "' + b"x" * (33 << 20) + b'"}',
                   timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    # the client goes away after the first chunk: the upstream request is cancelled
    with httpx.stream("POST", base + "/v1/completions", json={"model": "slow", "stream": True}, timeout=30) as r:
        next(r.iter_lines())
    deadline = time.monotonic() + 5
    while not (host.pids / "slow.cancelled").exists():
        assert time.monotonic() < deadline, "the backend kept streaming after the client left"
        time.sleep(0.05)
    deadline = time.monotonic() + 5
    while 'xgen_router_in_flight{model="slow"} 0.0' not in httpx.get(base + "/metrics").text:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    # the backend dies mid-stream: an OpenAI-style error event, then its state changes; slow is unaffected
    with httpx.stream("POST", base + "/v1/chat/completions", json={"model": "dies", "stream": True},
                      timeout=30) as r:
        events = sse_events(list(r.iter_lines()))
    assert [e["choices"][0]["delta"]["content"] for e in events[:2]] == ["fake dies: chunk 0. ", "fake dies: chunk 1. "]
    assert events[-1]["error"]["code"] == "backend_disconnected"
    host.wait(lambda s: s["dies"]["state"] in ("CrashLoopBackOff", "Starting"), 10, "dies noticed dead")
    assert chat(base, "slow").status_code == 200
    assert host.status()["slow"]["state"] == "Ready" and host.status()["slow"]["restarts"] == 0


@pytest.mark.parametrize("path", ["/v1/chat/completions"])
def test_host_header_still_checked(host, path):
    base = start_router(host)
    r = httpx.post(base + path, json={"model": "x"}, headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


def test_an_invalid_edit_keeps_routing_to_the_last_good_process(host):
    """A typo in a running model's manifest: the reconciler keeps the last good process, and so does the
    router (name and alias), through the invalid edit and its repair: zero failed requests."""
    good = manifest("a", alias=["gpt-a"], env={"FAKE_MODE": "chunks=3,chunk_delay=0.02"})
    host.write("a", good)
    base = start_router(host)
    pid = host.wait_ready("a")["a"]["pid"]
    failures: list[str] = []
    done: list[str] = []
    stop = threading.Event()

    def client() -> None:
        i = 0
        while not stop.is_set():
            model = ("a", "gpt-a")[i % 2]
            i += 1
            try:
                with httpx.stream("POST", base + "/v1/chat/completions", timeout=10,
                                  json={"model": model, "stream": True, "messages": []}) as r:
                    lines = list(r.iter_lines())
                if r.status_code != 200 or "data: [DONE]" not in lines:
                    failures.append(f"{model}: {r.status_code} {lines[-3:]}")
                else:
                    done.append(model)
            except httpx.HTTPError as exc:
                failures.append(f"{model}: {exc!r}")

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(done) < 5:
            assert time.monotonic() < deadline and not failures, failures
            time.sleep(0.05)
        host.write("a", good.replace("  ready_timeout:", "  ctx_sise: 4096\n  ready_timeout:"))
        host.wait(lambda s: "ctx_sise" in (s["a"]["manifest_error"] or ""), 10, "the invalid edit noticed")
        before = len(done)
        time.sleep(2 * FAST_RESYNC + 1)  # several passes (and full resyncs) with the invalid manifest
        assert len(done) - before >= 5, "the client did not get through while the manifest was invalid"
        models = httpx.get(base + "/v1/models", timeout=10).json()["data"]
        assert [(m["id"], m["aliases"]) for m in models] == [("a", ["gpt-a"])]
        assert "ctx_sise" in models[0]["manifest_error"] and str(host.manifests) not in models[0]["manifest_error"]
        host.write("a", good)
        host.wait(lambda s: not s["a"]["manifest_error"], 10, "the repair noticed")
        before = len(done)
        time.sleep(1)
        assert len(done) - before >= 3
    finally:
        stop.set()
        thread.join(15)
    assert failures == []
    assert host.status()["a"]["pid"] == pid and host.status()["a"]["state"] == "Ready"
    assert "gpt-a" in done and "a" in done


def test_a_vllm_model_answers_to_its_model_id_through_the_router(host):
    """`model: org/v` (what vLLM itself answers to without --served-model-name) reaches the model through
    the router and is accepted by the backend (the fake vLLM answers 404 to names it was not given). The
    hub id is fetched into the store first (issue 23): vLLM runs on the snapshot directory and still answers
    to org/v (--served-model-name unchanged)."""
    from xgen_declare.processes.state_store import StateStore
    from xgen_declare.testing.fakehub import FakeHub

    hub = FakeHub().start()
    try:
        commit = hub.add_repo("org/v", {"config.json": b'{"architectures": ["Qwen3ForCausalLM"]}\n',
                                        "model.safetensors": b"\0" * 4096})
        host.env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(host.root / "hub-cache"))
        host.env.pop("HF_HUB_OFFLINE", None)
        _answers_to_its_model_id(host, commit)
        argv = StateStore(host.state).load("v").argv
        snapshot = host.root / "hub-cache" / "models--org--v" / "snapshots" / commit
        assert argv[1:3] == ["serve", str(snapshot)], argv
        assert argv[argv.index("--served-model-name") + 1:][:3] == ["v", "vee", "org/v"], argv
    finally:
        hub.stop()


def _answers_to_its_model_id(host, commit: str) -> None:
    host.write("v", manifest("v", backend="vllm-cpu", model_path="org/v", alias=["vee"]))
    base = start_router(host)
    st = host.wait_ready("v")
    for model in ("v", "vee", "org/v"):
        r = chat(base, model)
        assert r.status_code == 200, (model, r.text)
        assert r.json()["model"] == "v"  # vLLM reports the first served name
    direct = f"http://127.0.0.1:{st['v']['port']}/v1/chat/completions"
    r = httpx.post(direct, json={"model": "org/other", "messages": []}, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["message"] == "The model `org/other` does not exist."
    r = chat(base, "org/other")
    assert r.status_code == 404 and r.json()["error"]["known"] == ["v", "org/v", "vee"]
