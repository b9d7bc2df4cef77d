"""A small asyncio HTTP/1.1 load generator for the router benches (bench/vs_litellm.py, bench/cold_start.py).

Raw streams, one keep-alive connection per worker, so the client itself costs little CPU on a
shared 2-core machine (httpx costs about 1 ms a request there). It reads Content-Length and chunked
bodies, and records per request: status, time to the first body byte (TTFB), total time, and
whether it counts as an error (a non-200, a broken connection, or an SSE stream without `[DONE]`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass


@dataclass
class Result:
    status: int
    ttfb: float
    total: float
    error: str = ""


class _Stale(Exception):
    """The server closed the connection before answering."""


class Conn:
    def __init__(self, host: str, port: int, token: str | None = None):
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> Result:
        """One request; a kept-alive connection the server closed meanwhile (llama-server closes it after
        a streamed answer) is opened again once, as HTTP clients do, before anything counts as an error."""
        for attempt in (1, 2):
            reused = self.writer is not None
            t0 = time.perf_counter()
            try:
                return await asyncio.wait_for(self._request(method, path, body, t0), timeout)
            except _Stale:
                self.close()
                if reused and attempt == 1:
                    continue
                return Result(0, 0.0, time.perf_counter() - t0, "connection closed before the status line")
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                self.close()
                return Result(0, 0.0, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")

    async def _request(self, method: str, path: str, body: dict | None, t0: float) -> Result:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nAccept: */*\r\n{self.auth}\r\n").encode()
        try:
            self.writer.write(head + data)
            status_line = await self.reader.readline()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _Stale() from exc
        if not status_line:
            raise _Stale()
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        ttfb = 0.0
        chunks: list[bytes] = []
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                chunk = await self.reader.readexactly(size + 2)
                if not ttfb:
                    ttfb = time.perf_counter() - t0
                chunks.append(chunk[:-2])
        elif "content-length" in headers:
            n = int(headers["content-length"])
            chunk = await self.reader.readexactly(n)
            ttfb = time.perf_counter() - t0
            chunks.append(chunk)
        else:  # read to close
            chunks.append(await self.reader.read())
            ttfb = time.perf_counter() - t0
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        total = time.perf_counter() - t0
        payload = b"".join(chunks)
        error = ""
        if status != 200:
            error = f"HTTP {status}: {payload[:200]!r}"
        elif body is not None and body.get("stream") and b"[DONE]" not in payload:
            error = f"stream without [DONE]: {payload[-200:]!r}"
        elif b'data: {"error"' in payload:
            error = f"error event: {payload[:200]!r}"
        return Result(status, ttfb, total, error)


async def sequential(host: str, port: int, path: str, body: dict, n: int, token: str | None = None
                     ) -> list[Result]:
    conn = Conn(host, port, token)
    out = [await conn.request("POST", path, body) for _ in range(n)]
    conn.close()
    return out


async def concurrent(host: str, port: int, path: str, body: dict, workers: int, per_worker: int,
                     token: str | None = None) -> tuple[list[Result], float]:
    """WORKERS connections, each sending PER_WORKER requests back to back; (results, wall seconds)."""
    async def worker() -> list[Result]:
        conn = Conn(host, port, token)
        res = [await conn.request("POST", path, body, timeout=120) for _ in range(per_worker)]
        conn.close()
        return res

    t0 = time.perf_counter()
    parts = await asyncio.gather(*(worker() for _ in range(workers)))
    return [r for p in parts for r in p], time.perf_counter() - t0
