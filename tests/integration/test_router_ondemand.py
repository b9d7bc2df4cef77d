"""On-demand models behind the router with the fake backend: Idle until the first request, concurrent
first requests start it once, idle stop; making room on a small fake GPU (rx6800 sysfs fixture, vLLM
reserving gpu_memory_utilization x 16 GiB): least recently used first, never an `always` model or one
with a request in flight, 503 with the ledger's reason when nothing can make room."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx

from .conftest import manifest
from .test_router import chat, start_router

RX6800 = Path(__file__).resolve().parents[1] / "fixtures" / "sysfs" / "rx6800"


def events(base: str, types: set[str]) -> list[dict]:
    with httpx.stream("GET", base + "/api/management/events", params={"since": 0, "timeout": 0.5}, timeout=10) as r:
        data = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    return [e for e in data if e["type"] in types]


def starts(host, name: str) -> int:
    return (host.state / "logs" / f"{name}.log").read_text().count(f"starting {name} (")


def test_cold_start_once_for_concurrent_requests_then_idle(host):
    host.write("lazy", manifest("lazy", activation="on-demand", idle_timeout="1.5s", env={"FAKE_MODE": "load=0.5"}))
    base = start_router(host)
    host.wait(lambda s: s["lazy"]["state"] == "Idle", 10, "lazy Idle")
    assert host.cli("status").stdout.count("Idle") == 1
    assert httpx.get(base + "/v1/models").json()["data"][0]["state"] == "Idle"

    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(chat(base, "lazy"))) for _ in range(5)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in answers] == [200] * 5, [r.text for r in answers]
    assert time.monotonic() - t0 >= 0.5  # waited for the load
    assert starts(host, "lazy") == 1 and host.status()["lazy"]["restarts"] == 0
    assert host.status()["lazy"]["state"] == "Ready"

    st = host.wait(lambda s: s["lazy"]["state"] == "Idle", 10, "lazy Idle after idle_timeout")
    assert st["lazy"]["pid"] is None
    types = [e["type"] for e in events(base, {"on_demand_start", "idle_stop"})]
    assert types == ["on_demand_start", "idle_stop"]
    metrics = httpx.get(base + "/metrics").text
    assert 'xgen_router_cold_start_seconds_count{model="lazy"} 5.0' in metrics
    assert 'xgen_router_idle_stops_total{model="lazy"} 1.0' in metrics
    assert 'xgen_model_state{model="lazy",state="Idle"} 1.0' in metrics
    assert chat(base, "lazy").status_code == 200  # and again
    assert starts(host, "lazy") == 2


def gpu_host(host, margin_mib: int) -> None:
    host.env["XGEN_SYSFS_ROOT"] = str(RX6800)
    host.config(binaries={"vllm-rocm": str(host.fake)})
    cfg = json.loads((host.manifests / "xgen-declare.yaml").read_text())
    cfg["placement"] = {"margin_mib": margin_mib}
    (host.manifests / "xgen-declare.yaml").write_text(json.dumps(cfg))


def vllm(name: str, gmu: float, activation: str = "on-demand", **spec) -> str:
    return manifest(name, backend="vllm-rocm", model_path=f"/models/{name}-hf", gpu_memory_utilization=gmu,
                    activation=activation, **spec)


def test_eviction_least_recently_used_first(host):
    gpu_host(host, margin_mib=6000)  # usable ~10 GiB of 16: two models of 0.3 x 16 GiB fit, not three
    for name in ("e1", "e2", "e3"):
        host.write(name, vllm(name, 0.3))
    base = start_router(host)
    host.wait(lambda s: all(s[n]["state"] == "Idle" for n in ("e1", "e2", "e3")), 10, "all Idle")
    for name in ("e1", "e2", "e1"):  # e2 is now the least recently used
        assert chat(base, name).status_code == 200
    r = chat(base, "e3")
    assert r.status_code == 200, r.text
    st = host.wait(lambda s: s["e2"]["state"] == "Idle", 10, "e2 evicted")
    assert st["e1"]["state"] == "Ready" and st["e3"]["state"] == "Ready"
    evictions = events(base, {"eviction"})
    assert [(e["model"], e["to_make_room_for"]) for e in evictions] == [("e2", "e3")]
    assert 'xgen_router_evictions_total{model="e2"} 1.0' in httpx.get(base + "/metrics").text


def test_503_with_the_ledger_reason_never_evicting_always_or_busy_models(host):
    gpu_host(host, margin_mib=6000)
    host.write("base", vllm("base", 0.5, activation="always"))     # 8 GiB, never evicted
    host.write("small", vllm("small", 0.1, env={"FAKE_MODE": "chunks=30,chunk_delay=0.1"}))
    host.write("other", vllm("other", 0.1))                        # fits only once small is gone
    host.write("huge", vllm("huge", 0.3))                          # never fits next to base
    base = start_router(host)
    host.wait_ready("base")
    assert chat(base, "small").status_code == 200

    r = chat(base, "huge")
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "insufficient_memory" and err["type"] == "server_error"
    assert err["message"] == ("huge does not fit, even with every idle on-demand model stopped: overcommit: huge: "
                              "4.8 GiB on GPU0 + base: 8.0 GiB > 10.1 GiB usable; try lower gpu_memory_utilization "
                              "to ≤ 0.13")
    assert err["short_mib"] == {"GPU0": 2723.0}
    assert host.status()["small"]["state"] == "Ready"  # nothing was stopped for nothing

    # a request in flight keeps small: other cannot have its room meanwhile
    with httpx.stream("POST", base + "/v1/completions", json={"model": "small", "stream": True}, timeout=30) as s:
        lines = s.iter_lines()  # kept: a dropped iterator closes the response (a client disconnect)
        next(lines)
        r = chat(base, "other")
        assert r.status_code == 503 and "overcommit" in r.json()["error"]["message"], r.text
        assert host.status()["small"]["state"] == "Ready"
    r = chat(base, "other")
    assert r.status_code == 200, r.text
    st = host.wait(lambda s: s["small"]["state"] == "Idle", 10, "small evicted")
    assert st["base"]["state"] == "Ready" and st["base"]["restarts"] == 0
