"""`run --api` with the fake backend: load through HTTP, follow events, unload; tokens on a real socket."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from xgen_declare.cli.events import read_events
from xgen_declare.testing.harness import free_port

from .conftest import alive

P = "/api/management"
SEED = {"model_path": "/models/Qwen3-8B.Q4_K_M.gguf", "backend": "llama-server-cpu", "main_gpu": 0,
        "split_mode": "layer", "tensor_split": [], "n_gpu_layers": -1, "ready_timeout": 10, "stop_grace": 2}


def wait_up(host, base: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(base + P + "/models", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("API did not come up:\n" + host.daemon_log()[-3000:])


def test_load_follow_events_unload(host):
    port = free_port()
    host.start_daemon("--api", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_up(host, base)
    events: list[dict] = []

    def follow():
        with httpx.stream("GET", base + P + "/events", params={"since": 0, "timeout": 20}, timeout=30) as r:
            for ev in read_events(r.iter_lines()):
                events.append(ev)
                if ev.get("new") == "Ready":
                    return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    r = httpx.post(base + P + "/load", params={"wait": 15}, json=SEED, timeout=30)
    assert r.status_code == 200, r.text + host.daemon_log()[-3000:]
    body = r.json()
    name = "qwen3-8b-q4-k-m"
    assert body["status"] == "success" and body["model"] == name and body["backend"] == "llama-server-cpu"
    assert body["endpoint"] == f"http://127.0.0.1:{body['port']}/v1" and body["port"] == host.base
    assert (host.manifests / "api" / f"{name}.yaml").is_file()
    follower.join(20)
    seq = [(e["old"], e["new"]) for e in events if e["type"] == "state" and e["model"] == name]
    assert [seq[0][0]] + [new for _, new in seq] == ["Pending", "Starting", "Ready"], events

    model = httpx.get(base + P + f"/models/{name}").json()
    pid = model["pid"]
    assert model["state"] == "Ready" and alive(pid) and model["source"] == "api"
    assert httpx.get(body["endpoint"].removesuffix("/v1") + "/health").status_code == 200
    metrics = httpx.get(base + "/metrics").text
    assert f'xgen_model_state{{model="{name}",state="Ready"}} 1.0' in metrics
    assert f'xgen_model_start_latency_seconds_count{{model="{name}"}} 1.0' in metrics

    cli = host.cli("events", "--url", base, "--since", "0", "--timeout", "1")
    assert cli.returncode == 0, cli.stderr
    assert f"{name}: Pending -> Starting" in cli.stdout and f"{name}: Starting -> Ready" in cli.stdout

    r = httpx.post(base + P + "/unload", params={"wait": 15}, json={"name": name}, timeout=30)
    assert r.json()["status"] == "success", r.text
    assert not (host.manifests / "api" / f"{name}.yaml").exists()
    assert not alive(pid)
    assert httpx.get(base + P + "/models").json() == {"models": []}


def test_token_and_public_bind(host):
    port = free_port()
    refused = host.cli("run", str(host.manifests), "--api", "--api-host", "0.0.0.0", "--api-port", str(port))
    assert refused.returncode == 7 and "without a token" in refused.stderr
    host.env["XGEN_API_TOKEN"] = "t0ken"
    host.start_daemon("--api", "--api-host", "0.0.0.0", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_up(host, base)
    off = {**SEED, "name": "off", "enabled": False}
    r = httpx.post(base + P + "/load", json=off)
    assert r.status_code == 401
    assert not (host.manifests / "api").exists()
    r = httpx.post(base + P + "/load", json=off, params={"wait": 10}, headers={"Authorization": "Bearer t0ken"})
    assert r.status_code == 200 and r.json()["state"] == "Stopped", r.text
    assert httpx.get(base + P + "/models/off").json()["state"] == "Stopped"
    assert httpx.get(base + P + "/models", headers={"Host": "attacker.example"}).status_code == 400


def test_busy_api_port_is_an_error(host):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = host.cli("run", str(host.manifests), "--api", "--api-port", str(s.getsockname()[1]), timeout=30)
    assert r.returncode == 7 and "the API cannot listen on 127.0.0.1:" in r.stderr
    assert "daemon stopped" in r.stderr  # the lock is released, nothing keeps running


def test_concurrent_loads_of_one_name_each_answer_their_own_request(host):
    """Twenty loads of one name with different specs: the last write is applied (success, Ready with its
    spec); every other answer says it was superseded, at once, instead of 202 "pending" + "Ready" after `wait`."""
    port = free_port()
    host.start_daemon("--api", "--api-port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_up(host, base)
    answers: dict[int, httpx.Response] = {}

    def load(i: int) -> None:
        answers[i] = httpx.post(base + P + "/load", params={"wait": 30}, timeout=60,
                                json={**SEED, "name": "m", "alias": [f"v{i}"]})

    t0 = time.monotonic()
    threads = [threading.Thread(target=load, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - t0
    final = (host.manifests / "api" / "m.yaml").read_text()
    last = next(i for i in range(20) if f"- v{i}\n" in final)
    kinds = {i: (r.status_code, r.json()["status"]) for i, r in answers.items()}
    assert kinds[last] == (200, "success") and answers[last].json()["state"] == "Ready", answers[last].text
    assert set(kinds.values()) <= {(200, "success"), (409, "superseded")}, kinds
    assert elapsed < 25, (elapsed, kinds)
    argv = httpx.get(base + P + "/models/m").json()["argv"]
    assert argv[argv.index("--alias") + 1] == f"m,v{last}"
    for i, r in answers.items():  # a success was true when it was answered: its spec had become Ready
        if i != last and kinds[i][0] == 200:
            assert r.json()["state"] == "Ready"
