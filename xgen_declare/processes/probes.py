"""Readiness and liveness probes over HTTP, per backend protocol (see backends.READINESS_PATH).

    llama-server       GET /health     503 while loading, 200 when ready
    vLLM               GET /health     connection refused until ready, then 200
    llama-cpp-python   GET /v1/models  200 once loaded (it has no /health: 404)
    Ray node           TCP connect     the head's GCS port / a worker's raylet port accepts (TCP_PROBE)

Only a 200 (or an accepted connection) counts. Probes run on a small thread pool so a hung backend
never stalls the daemon loop; the loop collects results with `Prober.result()`. Proxies from the
environment are ignored.
"""

from __future__ import annotations

import socket
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx


TCP_PROBE = "tcp:"  # a readiness "path" that means: the port accepts a TCP connection (no HTTP)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


def probe_url(host: str, port: int, path: str) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    if path == TCP_PROBE:
        return f"tcp://{host}:{port}"
    return f"http://{host}:{port}{path}"


def probe_tcp(url: str, timeout: float) -> ProbeResult:
    host, _, port = url[len("tcp://"):].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return ProbeResult(True, f"connect {url}: accepted")
    except socket.timeout:
        return ProbeResult(False, f"connect {url}: no answer within {timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, f"connect {url}: {exc.strerror or type(exc).__name__}")


def probe_once(client: httpx.Client, url: str, timeout: float) -> ProbeResult:
    if url.startswith("tcp://"):
        return probe_tcp(url, timeout)
    try:
        resp = client.get(url, timeout=timeout)
    except httpx.ConnectError:
        return ProbeResult(False, f"GET {url}: connection refused")
    except httpx.TimeoutException:
        return ProbeResult(False, f"GET {url}: no answer within {timeout:g}s")
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"GET {url}: {type(exc).__name__}")
    if resp.status_code == 200:
        return ProbeResult(True, f"GET {url}: 200")
    return ProbeResult(False, f"GET {url}: HTTP {resp.status_code}")


class Prober:
    """Asynchronous probes keyed by model name: at most one in flight per model."""

    def __init__(self, timeout: float = 2.0, workers: int = 4, on_done=None):
        self.timeout = timeout
        self.on_done = on_done  # called from the probe thread when a result is ready (wakes the loop)
        self._client = httpx.Client(trust_env=False, follow_redirects=False)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._inflight: dict[str, Future] = {}

    def start(self, name: str, url: str) -> None:
        if name not in self._inflight:
            fut = self._pool.submit(probe_once, self._client, url, self.timeout)
            if self.on_done is not None:
                fut.add_done_callback(lambda _f: self.on_done())
            self._inflight[name] = fut

    def busy(self, name: str) -> bool:
        return name in self._inflight

    def result(self, name: str) -> ProbeResult | None:
        fut = self._inflight.get(name)
        if fut is None or not fut.done():
            return None
        del self._inflight[name]
        try:
            return fut.result()
        except Exception as exc:  # pragma: no cover - probe_once catches httpx errors
            return ProbeResult(False, f"probe error: {exc}")

    def forget(self, name: str) -> None:
        self._inflight.pop(name, None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
