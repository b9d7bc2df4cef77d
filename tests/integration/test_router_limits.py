"""The router under hostile input and load, with the fake backend (issue #21): a key file that is a
FIFO stalls nothing (finding 3); many long streams to one model leave the others answering (finding 6);
a path that leaves /v1/ reaches no backend (finding 10). Every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import httpx

from .conftest import manifest
from .test_router import chat, start_router


def test_a_key_file_turned_fifo_answers_503_and_stalls_nothing(host, tmp_path):
    key = tmp_path / "b.key"
    key.write_text("backend-secret\n")
    host.write("a", manifest("a"))
    host.write("b", manifest("b", api_key_file=str(key)))
    fifo = tmp_path / "v.key"
    os.mkfifo(fifo)
    host.write("v", manifest("v", backend="vllm-cpu", api_key_file=str(fifo)))  # read at its start
    base = start_router(host)
    host.wait_ready("a", "b")  # the control loop was not stopped by v's FIFO
    st = host.wait(lambda s: s["v"]["state"] == "Blocked", 10, "v Blocked by its key file")
    assert st["v"]["last_error"] == (f"cannot read the secret file for VLLM_API_KEY: {fifo}: is a FIFO (named pipe), "
                                     "not a regular file (point it at a regular file)")
    assert chat(base, "b").status_code == 200

    key.unlink()
    os.mkfifo(key)  # the router used to open() it on the event loop for every request: API, dashboard, /metrics
    deadline = time.monotonic() + 10
    while True:
        r = httpx.post(base + "/v1/chat/completions", json={"model": "b", "messages": []}, timeout=5)
        if r.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # until the control loop's next step sees the new file
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "backend_key_unreadable"
    assert r.json()["error"]["message"].startswith("cannot send b's key upstream: spec.api_key_file (in ")
    assert r.json()["error"]["message"].endswith(f"{key} is a FIFO (named pipe), not a regular file (point it at a "
                                                 "regular file)")
    assert httpx.get(base + "/metrics", timeout=5).status_code == 200
    assert chat(base, "a").status_code == 200
    r = httpx.post(base + "/v1/chat/completions", json={"model": "v", "messages": []}, timeout=5)
    assert r.status_code == 503 and "VLLM_API_KEY" in r.json()["error"]["message"]


def test_many_streams_to_one_model_leave_the_others_answering(host):
    """101 long streams to `busy` (one more than the old shared pool of 100): 64 are forwarded
    (router.connections_per_model), the rest get 429 at once; `quick` still answers at once."""
    host.write("busy", manifest("busy", env={"FAKE_MODE": "chunks=30,chunk_delay=1"}))
    host.write("quick", manifest("quick"))
    base = start_router(host)
    host.wait_ready("busy", "quick")

    async def run() -> tuple[list[int], float, int, dict]:
        opened: list[int] = []
        release = asyncio.Event()
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            busy_answer: dict = {}

            async def hold() -> None:
                async with client.stream("POST", base + "/v1/completions",
                                         json={"model": "busy", "stream": True}) as r:
                    chunks = r.aiter_raw()
                    if r.status_code == 200:  # the first bytes: the stream is open upstream (and stays open:
                        await chunks.__anext__()  # leaving an `async for` would close the response)
                    else:
                        busy_answer.update({"status": r.status_code, "retry": r.headers.get("retry-after"),
                                            **(await r.aread() and {"body": r.json()})})
                    opened.append(r.status_code)
                    await release.wait()
                    await chunks.aclose()

            tasks = [asyncio.create_task(hold()) for _ in range(101)]
            try:
                deadline = time.monotonic() + 20
                while len(opened) < 101:
                    assert time.monotonic() < deadline, f"only {len(opened)} of 101 answered: {opened}"
                    await asyncio.sleep(0.05)
                t0 = time.monotonic()
                r = await client.post(base + "/v1/chat/completions", json={"model": "quick", "messages": []},
                                      timeout=15)
                took = time.monotonic() - t0
                return opened, took, r.status_code, busy_answer
            finally:
                release.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    opened, took, quick_status, busy = asyncio.run(asyncio.wait_for(run(), 60))
    assert quick_status == 200 and took < 3, (quick_status, took)
    assert sorted(opened) == [200] * 64 + [429] * 37
    assert busy["status"] == 429 and busy["retry"] == "1"
    assert busy["body"]["error"]["code"] == "model_busy"
    assert busy["body"]["error"]["message"] == ("64 requests to busy are being answered already "
                                                "(router.connections_per_model); retry later")
    deadline = time.monotonic() + 10
    while 'xgen_router_in_flight{model="busy"} 0.0' not in httpx.get(base + "/metrics", timeout=5).text:
        assert time.monotonic() < deadline, "the streams were not closed upstream"
        time.sleep(0.1)


def raw_get(base: str, target: str) -> tuple[int, bytes]:
    """A request line sent as it is (httpx would resolve the dot segments before sending)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_path_that_leaves_v1_reaches_no_backend(host, tmp_path):
    key = tmp_path / "a.key"
    key.write_text("backend-secret\n")
    host.write("a", manifest("a", api_key_file=str(key)))
    base = start_router(host)
    host.wait_ready("a")
    for target in ("/v1/../../props?model=a", "/v1/%2e%2e/%2e%2e/props?model=a", "/v1/..%2f..%2fprops?model=a",
                   "/v1/%252e%252e/health?model=a", "/v1/chat/../../health?model=a"):
        status, body = raw_get(base, target)
        assert status == 400, (target, status, body[:300])
        assert b'"code":"invalid_path"' in body.replace(b" ", b""), body[:300]
    status, _ = raw_get(base, "/v1/models")
    assert status == 200
