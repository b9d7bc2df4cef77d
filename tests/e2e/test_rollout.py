"""Rollouts with the real llama-server behind the router (issue 15): clients streaming through the
router across a `recreate` edit and across an edit whose new spec cannot start see no failed request;
the bad edit leaves the last good spec serving with rollout_error."""

from __future__ import annotations

import json
import threading

import httpx

from tests.e2e.test_cpu_backends import manifest, write_config
from xgen_declare.testing.harness import free_port, free_port_block


class Clients:
    """`n` clients streaming chat completions through the router in a loop."""

    def __init__(self, base: str, n: int = 2):
        self.failures: list[str] = []
        self.done = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(base,), daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def loop(self, base: str) -> None:
        body = {"model": "chat", "stream": True, "max_tokens": 16,
                "messages": [{"role": "user", "content": "count to ten"}]}
        while not self.stop.is_set():
            status = None
            try:
                with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=120) as r:
                    status, lines = r.status_code, list(r.iter_lines())
                ok = status == 200 and "data: [DONE]" in lines and not any('"error"' in x for x in lines)
            except httpx.HTTPError as exc:
                ok, lines = False, [repr(exc)]
            if ok:
                self.done += 1
            else:
                self.failures.append(f"{status} {lines[-3:]}")

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)


def serve_chat(tmp_path, tiny_models, llama_server_binary, daemon_factory, rollout: str):
    """A daemon with the router serving `chat` (real llama-server, ctx 512): (manifest path, daemon, router
    base URL, chat's first status row)."""
    d = tmp_path / "manifests"
    d.mkdir()
    write_config(d, llama_server_binary, free_port_block(20))
    path = d / "chat.yaml"
    path.write_text(manifest("chat", tiny_models["chat"], "llama-server-cpu", ctx=512) + rollout)
    daemon = daemon_factory(d)
    port = free_port()
    daemon.start("--api", "--api-port", str(port))
    return path, daemon, f"http://127.0.0.1:{port}", daemon.wait_ready(["chat"])["chat"]


def test_recreate_and_a_bad_edit_fail_no_request(tmp_path, tiny_models, llama_server_binary, daemon_factory):
    rollout = "  rollout: {strategy: recreate, drain_timeout: 60s}\n"
    path, daemon, base, first = serve_chat(tmp_path, tiny_models, llama_server_binary, daemon_factory, rollout)
    clients = Clients(base)
    try:
        daemon.wait(lambda s: clients.done >= 4, what="requests before the edit")
        path.write_text(manifest("chat", tiny_models["chat"], "llama-server-cpu", ctx=1024) + rollout)
        second = daemon.wait(lambda s: s["chat"]["spec_hash"] != first["spec_hash"] and s["chat"]["state"] == "Ready",
                             what="the edit rolled out")["chat"]
        n = clients.done
        daemon.wait(lambda s: clients.done >= n + 4, what="requests after the edit")
        bad = manifest("chat", tiny_models["chat"], "llama-server-cpu", ctx=2048) + rollout + \
            "  extra_args: [--no-such-flag-for-the-test]\n"
        path.write_text(bad)
        st = daemon.wait(lambda s: s["chat"]["rollout_error"] and s["chat"]["state"] == "Ready",
                         what="the bad edit rolled back")["chat"]
        n = clients.done
        daemon.wait(lambda s: clients.done >= n + 4, what="requests after the rollback")
    finally:
        clients.finish()
    assert clients.failures == []
    assert second["pid"] != first["pid"] and second["restarts"] == 1
    assert st["spec_hash"] == second["spec_hash"] == st["last_good_spec_hash"]
    assert "--no-such-flag-for-the-test" in st["rollout_error"]  # llama-server's own complaint, from the log tail
    history = json.loads(daemon.cli("history", "chat", "-o", "json").stdout)
    assert [e["result"] for e in history] == ["succeeded", "succeeded", "failed", "rolled back"]


def test_surge_swaps_processes_under_load_and_a_bad_surge_leaves_the_old_one_serving(
        tmp_path, tiny_models, llama_server_binary, daemon_factory):
    """Issue 15: `strategy: surge` starts the new llama-server beside the serving one on a spare port; the
    router moves to it once Ready and the old one drains, then stops. A spec that cannot start never
    stops the old process. 4 clients stream through the router all along: no request fails."""
    import psutil

    rollout = "  rollout: {strategy: surge, drain_timeout: 60s}\n"
    path, daemon, base, first = serve_chat(tmp_path, tiny_models, llama_server_binary, daemon_factory, rollout)
    clients = Clients(base, n=4)
    try:
        daemon.wait(lambda s: clients.done >= 4, what="requests before the edit")
        plan = daemon.cli("plan", "-o", "json")
        path.write_text(manifest("chat", tiny_models["chat"], "llama-server-cpu", ctx=1024) + rollout)
        second = daemon.wait(lambda s: s["chat"]["spec_hash"] != first["spec_hash"] and s["chat"]["state"] == "Ready",
                             what="the surge swapped processes")["chat"]
        daemon.wait(lambda s: not psutil.pid_exists(first["pid"]) or
                    psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE, what="the old process gone")
        n = clients.done
        daemon.wait(lambda s: clients.done >= n + 4, what="requests after the surge")
        path.write_text(manifest("chat", tiny_models["chat"], "llama-server-cpu", ctx=2048) + rollout +
                        "  extra_args: [--no-such-flag-for-the-test]\n")
        st = daemon.wait(lambda s: s["chat"]["rollout_error"], what="the bad surge failed")["chat"]
        n = clients.done
        daemon.wait(lambda s: clients.done >= n + 8, what="requests after the failed surge")
    finally:
        clients.finish()
    assert clients.failures == []
    assert plan.returncode == 0
    assert second["pid"] != first["pid"] and second["port"] != first["port"] and second["restarts"] == 1
    assert (st["state"], st["pid"], st["spec_hash"]) == ("Ready", second["pid"], second["spec_hash"])
    assert "the old process kept serving" in st["rollout_error"]
    assert "--no-such-flag-for-the-test" in st["rollout_error"]  # llama-server's own complaint: its own log's tail
    history = json.loads(daemon.cli("history", "chat", "-o", "json").stdout)
    assert [e["result"] for e in history] == ["succeeded", "succeeded", "failed"]
    logs = [daemon.state / "logs" / f for f in ("chat.log", "chat.surge.log")]  # a surge writes the other one
    surges = sum(f.read_text().count("starting chat (surge: ") for f in logs)
    assert surges == 2  # the failed spec is not tried again while it stays in the manifest
    plan = json.loads(daemon.cli("plan", "-o", "json").stdout)
    assert plan["actions"][0]["cause"] == "rolled_back"


def test_eviction_never_cuts_a_stream(tmp_path, llama_server_binary, daemon_factory):
    """Issue 15 item 3 with the real llama-server: two on-demand models and host memory for one
    (placement.host_memory_mib). While `a` streams a long answer, a request for `b` cannot evict it (a
    model with requests in flight is never an eviction candidate: 503 with the ledger's reason) and the
    stream ends whole; once `a` is quiet, `b` evicts it (nothing in flight to drain) and is served. The
    model is a larger generated one (43 MB, ~360 tokens/s on one thread) so that an answer takes seconds."""
    from xgen_declare.tools.tinygguf import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "mid.gguf", n_embd=512, n_layer=4)
    d = tmp_path / "manifests"
    d.mkdir()
    write_config(d, llama_server_binary, free_port_block(20))
    with open(d / "xgen-declare.yaml", "a") as f:
        f.write("placement: {margin_mib: 0, host_memory_mib: 100}\n")  # one model at ctx 2048: ~70 MiB predicted
    for name in ("a", "b"):
        (d / f"{name}.yaml").write_text(manifest(name, model, "llama-server-cpu", ctx=2048)
                                        + "  activation: on-demand\n")
    daemon = daemon_factory(d)
    port = free_port()
    daemon.start("--api", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    daemon.wait(lambda s: s.get("a", {}).get("state") == "Idle" and s.get("b", {}).get("state") == "Idle",
                what="both models idle")
    long = {"model": "a", "stream": True, "max_tokens": 1500, "ignore_eos": True,
            "messages": [{"role": "user", "content": "count"}]}
    result: dict = {"lines": []}

    def stream() -> None:
        with httpx.stream("POST", base + "/v1/chat/completions", json=long, timeout=120) as r:
            result["status"] = r.status_code
            for line in r.iter_lines():
                result["lines"].append(line)

    t = threading.Thread(target=stream)
    t.start()
    daemon.wait(lambda s: s["a"]["state"] == "Ready" and len(result["lines"]) > 2, what="a streaming")
    short = {"model": "b", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    busy = httpx.post(base + "/v1/chat/completions", json=short, timeout=60)
    still_streaming = t.is_alive()
    t.join(120)
    assert still_streaming, "the stream ended before b was asked for"
    assert busy.status_code == 503, busy.text
    assert "does not fit" in busy.json()["error"]["message"] and "host_memory_mib" in busy.json()["error"]["message"]
    assert result["status"] == 200 and "data: [DONE]" in result["lines"]
    assert not any('"error"' in x for x in result["lines"])
    served = httpx.post(base + "/v1/chat/completions", json=short, timeout=60)
    assert served.status_code == 200, served.text
    st = daemon.wait(lambda s: s["a"]["state"] == "Idle" and s["b"]["state"] == "Ready", what="a evicted for b")
    assert st["a"]["pid"] is None
