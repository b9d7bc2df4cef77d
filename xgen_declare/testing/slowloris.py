"""A slowloris client for the load-shedding tests and the soak test (issue 21 finding 4): it sends a
request line and a header, then one header byte per `drip()`, and never ends its headers. Loopback only."""

from __future__ import annotations

import socket

MODELS = b"/api/management/models"


class SlowClient:
    def __init__(self, port: int, path: bytes = MODELS):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.sock.setblocking(False)
        self.answer, self.closed = b"", False

    def drip(self) -> None:
        try:
            self.sock.send(b"X")
        except OSError:
            pass

    def is_closed(self) -> bool:
        """Closed by the server (what it wrote before is kept in `answer`)."""
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return False
            except OSError:
                data = b""
            self.answer += data
            self.closed = not data
        return True
