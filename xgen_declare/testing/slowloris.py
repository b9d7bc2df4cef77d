"""A slowloris client for the load-shedding tests and the soak test (issue 21 finding 4): it sends a
request line and a header, then one header byte per `drip()`, and never ends its headers. Loopback only."""

from __future__ import annotations

import socket
import threading

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


def drip_all(clients: list[SlowClient], stop: threading.Event, every: float = 1.0) -> threading.Thread:
    """A started thread that sends one more header byte on each client every `every` seconds until `stop`."""

    def drip() -> None:
        while not stop.wait(every):
            for c in clients:
                c.drip()

    thread = threading.Thread(target=drip, name="slowloris", daemon=True)
    thread.start()
    return thread
