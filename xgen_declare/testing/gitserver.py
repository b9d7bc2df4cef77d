"""A real git smart-HTTP server for tests: git's own CGI `git http-backend` behind a small threaded HTTP
server on loopback, so that `git clone`, `git fetch` and `git push` over http run the real protocol.

    with GitHttpServer(root) as srv:                # serves every repository under `root`
        url = srv.url("config.git")                 # http://127.0.0.1:PORT/config.git
        srv.token = "s3cret"                        # from now on: Basic (any user, password = token)
                                                    # or `Authorization: Bearer s3cret`, else 401
        srv.refuse(503)                             # every request answers 503 until srv.refuse(None)
        srv.go_away(); srv.come_back()              # the port closes (connection refused), then reopens
        srv.stall(); srv.stall(False)               # requests hang (read, never answered) until released
        srv.cut(1000); srv.cut(None)                # a POST's answer is dropped after 1000 bytes (mid-fetch)
        srv.drip(0.2); srv.drip(None)               # answers trickle: 64 bytes, then a pause of 0.2 s, ...
        srv.sent_bytes                              # bytes of answer bodies sent so far (all requests)

The request body is streamed into the CGI's stdin (Content-Length or chunked) and its stdout streamed
back; the CGI environment is the one RFC 3875 and git-http-backend(1) describe (GIT_PROJECT_ROOT,
GIT_HTTP_EXPORT_ALL, PATH_INFO, QUERY_STRING, REQUEST_METHOD, CONTENT_TYPE, CONTENT_LENGTH, REMOTE_USER,
REMOTE_ADDR and every header as HTTP_*; GIT_PROTOCOL for protocol v2). Pushes are allowed
(http.receivepack) once a request is authenticated, or always when no token is set. HTTP/1.0: one
request per connection, the end of the body is the end of the connection.
"""

from __future__ import annotations

import base64
import hmac
import os
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["GitHttpServer", "http_backend"]

CHUNK = 64 * 1024
STALL_LIMIT = 120  # a stalled request is let go after this long even if the test forgets to release it


def http_backend() -> str:
    """The path of git's `git-http-backend` CGI (in `git --exec-path`)."""
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("git is not installed (apt-get install -y git)")
    exec_path = subprocess.run([git, "--exec-path"], capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    cgi = Path(exec_path) / "git-http-backend"
    if not cgi.exists():
        raise RuntimeError(f"{cgi} is missing: git's http-backend is not installed")
    return str(cgi)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        headers = getattr(self, "headers", None)  # absent when the request line itself was bad
        chunked = headers is not None and headers.get("Transfer-Encoding", "").lower() == "chunked"
        self.server.owner.requests.append(f"{getattr(self, 'command', '?')} {getattr(self, 'path', '?')}"
                                          + (" (chunked)" if chunked else ""))

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _user(self) -> str | None:
        """The authenticated user ("" when no token is set), or None when the request must get 401."""
        token = self.server.owner.token
        if token is None:
            return ""
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return "bearer"
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            if hmac.compare_digest(password.encode(), token.encode()):
                return user or "token"
        return None

    def _serve(self) -> None:
        owner = self.server.owner
        if owner.stalled.is_set():
            owner.released.wait(STALL_LIMIT)
            return
        if owner.refusing is not None:
            self.send_error(owner.refusing, "refused by the test (GitHttpServer.refuse)")
            return
        user = self._user()
        if user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(owner.root),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
               "REQUEST_METHOD": self.command, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "REMOTE_ADDR": self.client_address[0], "GATEWAY_INTERFACE": "CGI/1.1",
               "SERVER_PROTOCOL": "HTTP/1.0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
               "HOME": str(owner.root)}
        if user:
            env["REMOTE_USER"] = user
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_AUTHORIZATION", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"):
                env[key] = value
        if "Git-Protocol" in self.headers:
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        length = self.headers.get("Content-Length")
        if length is not None:
            env["CONTENT_LENGTH"] = length
        # pushes: http-backend refuses receive-pack to anonymous users unless http.receivepack is true
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.receivepack", "GIT_CONFIG_VALUE_0": "true"})
        cgi = subprocess.Popen([owner.backend], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        feeder = threading.Thread(target=self._feed, args=(cgi, length), daemon=True)
        feeder.start()
        try:
            self._relay(cgi)
        finally:
            feeder.join(30)
            try:
                cgi.wait(30)
            except subprocess.TimeoutExpired:
                cgi.kill()
                cgi.wait()

    def _copy(self, cgi: subprocess.Popen, left: int) -> bool:
        """`left` bytes of the request body into the CGI's stdin; False when the client went away first."""
        assert cgi.stdin is not None
        while left:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                return False
            cgi.stdin.write(data)
            left -= len(data)
        return True

    def _feed(self, cgi: subprocess.Popen, length: str | None) -> None:
        """The request body into the CGI's stdin, as it arrives (Content-Length, chunked, or none)."""
        assert cgi.stdin is not None
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    if not self._copy(cgi, size):
                        return
                    self.rfile.readline()
            elif length:
                self._copy(cgi, int(length))
        except (OSError, ValueError):
            pass
        finally:
            try:
                cgi.stdin.close()
            except OSError:
                pass

    def _relay(self, cgi: subprocess.Popen) -> None:
        """The CGI's headers as the response's status and headers, then its body as it comes."""
        assert cgi.stdout is not None
        status, headers = 200, []
        while True:
            line = cgi.stdout.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        owner = self.server.owner
        cut = owner.cut_after if self.command == "POST" else None
        pause = owner.drip_pause
        sent = 0
        while data := cgi.stdout.read1(64 if pause else CHUNK):
            if cut is not None and sent + len(data) > cut:
                self.wfile.write(data[:cut - sent])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-answer
                cgi.kill()
                return
            self.wfile.write(data)
            sent += len(data)
            owner.count(len(data))
            if pause:
                self.wfile.flush()
                if owner.closing.wait(pause):
                    return
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: "GitHttpServer"):
        self.owner = owner
        super().__init__(address, _Handler)


class GitHttpServer:
    """`git http-backend` on 127.0.0.1, serving the bare repositories under `root`."""

    def __init__(self, root: str | os.PathLike, token: str | None = None):
        self.root = Path(root).resolve()
        self.token = token
        self.refusing: int | None = None
        self.stalled, self.released = threading.Event(), threading.Event()
        self.cut_after: int | None = None
        self.drip_pause: float | None = None
        self.closing = threading.Event()  # set by stop(): a dripping answer ends at once
        self.requests: list[str] = []
        self.sent_bytes = 0  # bytes of answer bodies written to clients (what a fetch downloads)
        self._count_lock = threading.Lock()
        self.backend = http_backend()
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "GitHttpServer":
        self.closing.clear()
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"gitserver:{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stall(False)
        self.closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def count(self, n: int) -> None:
        with self._count_lock:
            self.sent_bytes += n

    def url(self, repo: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{repo}"

    def refuse(self, status: int | None = 503) -> None:
        """Answer every request with `status` (None: serve again)."""
        self.refusing = status

    def stall(self, on: bool = True) -> None:
        """While on, a request is read and never answered (a hung remote); off lets the waiting ones go."""
        if on:
            self.released.clear()
            self.stalled.set()
        else:
            self.stalled.clear()
            self.released.set()

    def cut(self, after_bytes: int | None) -> None:
        """Drop the connection of every POST (git-upload-pack: the pack) after `after_bytes` of its answer's
        body (None: answer whole again): a remote that goes away mid-fetch."""
        self.cut_after = after_bytes

    def drip(self, pause: float | None) -> None:
        """Send every answer 64 bytes at a time with `pause` seconds between (None: at full speed): a slow
        remote that is never idle, so only a timeout on the whole command stops it."""
        self.drip_pause = pause

    def go_away(self) -> None:
        """Close the listening socket: clients get connection refused until `come_back`."""
        self.stop()

    def come_back(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self.start()

    def __enter__(self) -> "GitHttpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
