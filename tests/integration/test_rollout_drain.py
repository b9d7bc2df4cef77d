"""Drain through the router with the fake backend (issue 15 item 3): an edit rolled out with
`strategy: recreate` while 4 clients stream in a loop fails no request; `down` and the removal of a
manifest let a stream in flight finish before the process is stopped."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from .conftest import manifest
from .test_router import free_port, start_router

SLOW = {"FAKE_MODE": "chunks=10,chunk_delay=0.1,load=0.5"}


def stream_once(base: str, model: str) -> str | None:
    """None when the answer streamed to [DONE]; else what went wrong."""
    try:
        with httpx.stream("POST", base + "/v1/chat/completions", timeout=60,
                          json={"model": model, "stream": True, "messages": []}) as r:
            lines = list(r.iter_lines())
    except httpx.HTTPError as exc:
        return repr(exc)
    if r.status_code != 200 or "data: [DONE]" not in lines or any("backend_disconnected" in x for x in lines):
        return f"{r.status_code} {lines[-3:]}"
    return None


class Clients:
    def __init__(self, base: str, model: str, n: int = 4):
        self.failures: list[str] = []
        self.done = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(base, model, i * 0.25), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def loop(self, base: str, model: str, stagger: float) -> None:
        time.sleep(stagger)  # out of step: some request is always in flight
        while not self.stop.is_set():
            err = stream_once(base, model)
            with self.lock:
                if err:
                    self.failures.append(err)
                else:
                    self.done += 1

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_recreate_edit_fails_no_request(host, drain="30s"):
    host.write("a", manifest("a", ctx_size=4096, env=SLOW, rollout={"strategy": "recreate", "drain_timeout": drain}))
    base = start_router(host)
    old = host.wait_ready("a")["a"]["pid"]
    clients = Clients(base, "a")
    try:
        host.wait(lambda s: clients.done >= 8, 20, "requests before the edit")
        time.sleep(0.3)
        host.write("a", manifest("a", ctx_size=8192, env=SLOW,
                                 rollout={"strategy": "recreate", "drain_timeout": drain}))
        st = host.wait(lambda s: s["a"]["pid"] not in (None, old) and s["a"]["state"] == "Ready", 30, "new spec Ready")
        before = clients.done
        host.wait(lambda s: clients.done >= before + 8, 20, "requests after the edit")
    finally:
        clients.finish()
    assert clients.failures == []
    assert st["a"]["restarts"] == 1
    assert "a: draining " in host.daemon_log()  # requests were in flight: the drain is what saved them


def test_down_and_removal_let_a_stream_finish(host):
    slow = {"FAKE_MODE": "chunks=10,chunk_delay=0.2"}
    host.write("a", manifest("a", env=slow))
    host.write("b", manifest("b", env=slow))
    base = start_router(host)
    host.wait_ready("a", "b")
    results: dict[str, str | None] = {}
    threads = [threading.Thread(target=lambda m=m: results.__setitem__(m, stream_once(base, m))) for m in "ab"]
    for t in threads:
        t.start()
    time.sleep(0.5)  # both streams under way
    r = host.cli("down", "a")
    assert r.returncode == 0, r.stderr
    (host.manifests / "b.yaml").unlink()
    for t in threads:
        t.join(30)
    assert results == {"a": None, "b": None}
    host.wait(lambda s: s["a"]["state"] == "Stopped" and "b" not in s, 15, "a stopped, b forgotten")


def test_stop_on_exit_lets_a_stream_finish(host):
    host.write("a", manifest("a", env={"FAKE_MODE": "chunks=10,chunk_delay=0.2"}))
    port = free_port()
    daemon = host.start_daemon("--api", "--api-port", str(port), "--stop-on-exit")
    base = f"http://127.0.0.1:{port}"
    host.wait_ready("a", timeout=20)
    result: list[str | None] = []
    t = threading.Thread(target=lambda: result.append(stream_once(base, "a")))
    t.start()
    time.sleep(0.5)  # under way
    daemon.send_signal(signal.SIGTERM)
    t.join(30)
    assert daemon.wait(30) == 0
    assert result == [None]
    assert host.status()["a"]["state"] == "Stopped"
    assert "a: draining 1 request(s) in flight" in host.daemon_log()
