"""What keeps the management API from becoming a remote shell (threat model: docs/api.md).

  * binding: loopback by default; any other address needs a token (`check_bind`);
  * writes: `Authorization: Bearer TOKEN` whenever a token is set (`require_token`);
  * Host header: checked against an allow-list (DNS rebinding from a browser on this machine);
  * Origin header of writes: when present (browsers), it must be this server's own origin: scheme, host
    and port of the request's Host (CSRF; another local port is another site); `Sec-Fetch-Site` other
    than `same-origin`/`none` is refused the same way. The router's half (`guard_reads`) applies both
    to reads too: a GET there may start a model (an `<img>` on any page would);
  * bodies: at most MAX_BODY bytes, counted while reading (chunked bodies included);
  * errors: one shape, `{"status": "error", "detail": ...}`, with the manifests dir and the state dir
    scrubbed from every text (`Scrubber`) and no traceback ever (`ApiProblem` + a catch-all handler).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from typing import Any, Iterable
from urllib.parse import urlsplit

from xgen_declare.config import Api, Config
from xgen_declare.errors import ExitCode, FileRefused, XgenError
from xgen_declare.readers.bounded import KIB
from xgen_declare.readers.secret import read_secret

MAX_BODY = 64 * 1024
TOKEN_LIMIT = 64 * KIB
READS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})  # Sec-Fetch-Site a browser sends for its own pages / typed URLs
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_ENV = "XGEN_API_TOKEN"


class ApiSetupError(XgenError):
    """The API cannot start as configured (no token for a public bind, unreadable token file, port in use)."""

    exit_code = ExitCode.CANNOT_SERVE


class ApiProblem(Exception):
    """An answer other than success: HTTP status + detail (+ extra JSON fields). Never a traceback."""

    def __init__(self, status: int, detail: str, **extra: Any):
        self.status, self.detail, self.extra = status, detail, extra
        super().__init__(detail)

    def body(self) -> dict:
        return {"status": "error", "detail": self.detail, **self.extra}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_token(api: Api, config: Config, environ: dict[str, str] | None = None) -> str | None:
    """XGEN_API_TOKEN, else the content of `api.token_file` (relative to the config file); None = no token."""
    environ = os.environ if environ is None else environ
    value = (environ.get(TOKEN_ENV) or "").strip()
    if value:
        return value
    if not api.token_file:
        return None
    path = config.resolve(api.token_file) or api.token_file
    try:
        return read_secret(path, what="a token file", limit=TOKEN_LIMIT)
    except FileRefused as exc:
        raise ApiSetupError(f"api.token_file: {exc}") from None


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise ApiSetupError(f"the API would listen on {host}, beyond this machine, without a token: set "
                            f"api.token_file in xgen-declare.yaml or {TOKEN_ENV} (or bind 127.0.0.1)")


def allowed_hosts(api: Api, bind_host: str) -> frozenset[str]:
    names = set(LOOPBACK_NAMES) | {bind_host.lower().strip("[]")}
    if api.advertise_host:
        names.add(api.advertise_host.lower())
    names.update(h.lower().strip("[]") for h in api.allowed_hosts)
    return frozenset(names)


def host_of(header: str) -> str:
    """'example.org:8000' -> 'example.org', '[::1]:8000' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_port(header: str) -> int | None:
    """'example.org:8000' -> 8000, '[::1]:8000' -> 8000, 'example.org' -> None (the scheme's default)."""
    header = header.strip()
    tail = header.rsplit("]", 1)[1] if header.startswith("[") and "]" in header else \
        header if header.count(":") == 1 else ""
    port = tail.rpartition(":")[2] if ":" in tail else ""
    return int(port) if port.isdigit() else None


def same_origin(origin: str, scheme: str, host_header: str) -> bool:
    """Whether a browser's `Origin` is the origin the request was sent to: scheme, host and port all equal
    (the port defaults by scheme). `http://localhost:9999` is another site than `http://localhost:8000`."""
    try:
        o = urlsplit(origin.strip())
        port = o.port
    except ValueError:
        return False
    if o.scheme not in DEFAULT_PORTS or not o.hostname or o.path or o.query:
        return False
    own_port = host_port(host_header) or DEFAULT_PORTS.get(scheme)
    return (o.scheme == scheme and o.hostname.lower() == host_of(host_header)
            and (port or DEFAULT_PORTS[o.scheme]) == own_port)


def cross_site(headers: dict[str, str], scheme: str) -> str | None:
    """Why a browser request comes from another site (None: it does not, or it is no browser)."""
    origin = headers.get("origin")
    if origin is not None and not same_origin(origin, scheme, headers.get("host", "")):
        return f"Origin {origin[:100]!r} is not this server's origin"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in SAME_ORIGIN_FETCH:
        return f"Sec-Fetch-Site is {fetch_site[:40]!r}"
    return None


def token_ok(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def require_token(headers, token: str | None) -> None:
    if token is not None and not token_ok(headers.get("authorization"), token):
        raise ApiProblem(401, "this endpoint changes state and needs `Authorization: Bearer <token>` "
                         "(the token of api.token_file / XGEN_API_TOKEN)")


class Scrubber:
    """Replaces the manifests dirs and the state dir in texts sent to clients by short labels."""

    def __init__(self, roots: Iterable[tuple[str, str]]):
        pairs: list[tuple[str, str]] = []
        for path, label in roots:
            for p in {os.path.abspath(path), os.path.realpath(path)}:
                pairs.append((p.rstrip("/") + "/", label))
        self.pairs = sorted(pairs, key=lambda x: -len(x[0]))  # longest first: nested dirs

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        for prefix, label in self.pairs:
            value = value.replace(prefix, label)
        return value

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        return value


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
                + (headers or [])})
    await send({"type": "http.response.body", "body": data})


class GuardMiddleware:
    """ASGI middleware: Host allow-list on every request, same-origin rule on writes (on every request
    with `guard_reads`), body size limit on requests with a body."""

    def __init__(self, app, hosts: frozenset[str], max_body: int = MAX_BODY, guard_reads: bool = False):
        self.app, self.hosts, self.max_body, self.guard_reads = app, hosts, max_body, guard_reads

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if "*" not in self.hosts and host_of(headers.get("host", "")) not in self.hosts:
            return await _send_json(send, 400, {"status": "error", "detail": "Host header not allowed (add the "
                                                "name to api.allowed_hosts if it is yours)"})
        read = scope.get("method") in READS
        if self.guard_reads or not read:
            # a browser page of another site (CSRF): browsers send Origin on a POST and Sec-Fetch-Site on
            # everything (an <img> GET has no Origin), curl sends neither
            why = cross_site(headers, scope.get("scheme", "http"))
            if why is not None:
                detail = "cross-origin request refused" if read else "cross-origin write refused"
                return await _send_json(send, 403, {"status": "error", "detail": detail, "reason": why})
        if read:
            return await self.app(scope, receive, send)
        too_big = {"status": "error", "detail": f"request body larger than {self.max_body} bytes"}
        try:
            if int(headers.get("content-length") or 0) > self.max_body:
                return await _send_json(send, 413, too_big)
        except ValueError:
            return await _send_json(send, 400, {"status": "error", "detail": "bad Content-Length"})
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await _send_json(send, 413, too_big)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
