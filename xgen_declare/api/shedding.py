"""How the API's HTTP server sheds load (issue 21, finding 4: slowloris).

uvicorn has no deadline for a request's headers and its `limit_concurrency` answers 503 only once the
headers are complete, so a client that sends one header byte a second holds a connection (and a file
descriptor of the daemon's process) for ever. Here, on uvicorn's own h11 protocol:

  * a header deadline: a request's line and headers must arrive within `api.header_timeout` seconds of the
    connection (or of the previous answer on a kept-alive connection); then 408 and close;
  * a body deadline: its body within `api.body_timeout` seconds of the headers; then 408 and close;
  * a connection cap (`api.max_connections`): a connection beyond it closes the connection that has waited
    longest for its headers (a slow or idle client), or, when every connection is busy with a request,
    is answered 503 naming the cap, at once;
  * the fd limit: the soft RLIMIT_NOFILE is raised toward the hard one and the cap kept well below it,
    so the control loop always has descriptors for state files, logs and backends; the listen backlog is
    ACCEPT_BURST, since asyncio accepts up to a backlog of sockets in one go before the cap sees them;
  * what this refuses, and every error of the server's event loop (e.g. accept() failing with EMFILE),
    is logged once per LOG_INTERVAL with a count, never a traceback per connection.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from typing import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("xgen_declare.api")

LOG_INTERVAL = 60.0
FDS_RESERVED = 256       # descriptors kept for the control loop (state files, logs, pipes, probes)
FDS_PER_CONNECTION = 2   # a /v1 request holds its client's socket and the socket to its backend
MIN_CONNECTIONS = 8
ACCEPT_BURST = 128       # the listen backlog; asyncio also accepts up to this many sockets before any is seen
NOFILE_TARGET = 65536    # raise the soft limit this far at most (children inherit it)


class OncePerInterval(logging.Filter):
    """Lets a kind of event be logged at most once per `interval` seconds, saying how many were not.
    Called: logs `message` to its logger; as a logging filter: keyed by the record's message template."""

    def __init__(self, logger: logging.Logger | None = None, interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.logger, self.interval, self.clock = logger or log, interval, clock
        self.last: dict[str, float] = {}
        self.skipped: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, str]:
        """(log it now, the suffix counting the ones not logged since the last time)."""
        now = self.clock()
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            self.skipped[key] = self.skipped.get(key, 0) + 1
            return False, ""
        if len(self.last) > 1024:
            self.last.clear()
        self.last[key] = now
        skipped = self.skipped.pop(key, 0)
        return True, (f" ({skipped} more like it in the last {now - last:.0f}s)" if skipped and last is not None else "")

    def __call__(self, key: str, level: int, message: str) -> bool:
        ok, more = self.allow(key)
        if ok:
            self.logger.log(level, "%s%s", message, more)
        return ok

    def filter(self, record: logging.LogRecord) -> bool:
        ok, more = self.allow(f"{record.name}:{record.msg}")
        if ok and more:
            record.msg = f"{record.msg}{more.replace('%', '%%')}"
        return ok


class Shedding:
    """The limits and the bookkeeping shared by every connection of one server."""

    def __init__(self, max_connections: int, header_timeout: float, body_timeout: float,
                 note: OncePerInterval | None = None, clock: Callable[[], float] = time.monotonic):
        self.max_connections, self.header_timeout, self.body_timeout = max_connections, header_timeout, body_timeout
        self.note = note or OncePerInterval(log)
        self.clock = clock
        self.waiting: dict[GuardedH11Protocol, float] = {}  # oldest first: waiting for a request's headers
        self.closing: set[GuardedH11Protocol] = set()       # closed here, not yet gone (connection_lost)

    def wait(self, conn: GuardedH11Protocol) -> None:
        self.waiting.pop(conn, None)
        self.waiting[conn] = self.clock()

    def done_waiting(self, conn: GuardedH11Protocol) -> None:
        self.waiting.pop(conn, None)

    def oldest_waiting(self, but: GuardedH11Protocol) -> GuardedH11Protocol | None:
        return next((c for c in self.waiting if c is not but), None)

    def loop_error(self, loop, context: dict) -> None:
        """The server's event loop's exception handler: one line per kind per interval, no traceback."""
        exc = context.get("exception")
        message = context.get("message") or "event loop error"
        key = f"{message}:{type(exc).__name__}"
        text = f"API server: {message}" + (f": {type(exc).__name__}: {exc}" if exc is not None else "")
        self.note(key, logging.ERROR, text)


def protocol_class(shed: Shedding) -> type[GuardedH11Protocol]:
    """uvicorn builds a protocol per connection from a class: this one carries `shed`."""
    return type("ShedH11Protocol", (GuardedH11Protocol,), {"shed": shed})


class GuardedH11Protocol(H11Protocol):
    shed: Shedding

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer = None
        self._partial = False
        self._answered = False  # no answer yet on this connection: closing it unasked needs a reason
        self._await_request()
        if len(self.connections) - len(self.shed.closing) > self.shed.max_connections:
            victim = self.shed.oldest_waiting(but=self)
            if victim is not None:  # a slow or idle client; told why unless it is idle between requests
                victim._close("evicted", "503 Service Unavailable", 0 if victim._between_requests() else 503,
                              f"the API has {self.shed.max_connections} open connections (api.max_connections) "
                              "and this one was the slowest to send its request; retry")
            else:
                self._close("full", "503 Service Unavailable", 503,
                            f"the API has {self.shed.max_connections} open connections, all busy with requests "
                            "(api.max_connections); retry in a moment")

    def data_received(self, data: bytes) -> None:
        self._partial = True
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._answered = True
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_request()  # kept alive: the next request has its own header deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.shed.done_waiting(self)
        self.shed.closing.discard(self)
        super().connection_lost(exc)

    # ---- deadlines -------------------------------------------------------------------------------
    def _await_request(self) -> None:
        self._cancel()
        self._partial = False
        self.shed.wait(self)
        self._timer = self.loop.call_later(self.shed.header_timeout, self._late, h11.IDLE)

    def _track(self) -> None:
        """After h11 saw bytes: headers complete -> body deadline; request complete -> no deadline."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return
        self.shed.done_waiting(self)
        if state is h11.SEND_BODY:
            if self._timer is None or self._timer_state is not h11.SEND_BODY:
                self._cancel()
                self._timer = self.loop.call_later(self.shed.body_timeout, self._late, h11.SEND_BODY)
                self._timer_state = h11.SEND_BODY
        else:
            self._cancel()

    def _between_requests(self) -> bool:
        """A kept-alive connection that was answered and has sent nothing of its next request: closed
        without a word, as for keep-alive. Not "nothing read yet": on a busy machine the loop accepts a burst
        of connections and runs each connection_made before reading any of them, so a new client's request
        may be waiting unread when the cap evicts it; it is told why."""
        return self._answered and not self._partial

    def _cancel(self) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()
        self._timer, self._timer_state = None, h11.IDLE

    def _late(self, state) -> None:
        self._timer = None
        if self.transport.is_closing() or self.conn.their_state is not state:
            return
        if state is h11.IDLE:
            if self._between_requests():  # an idle kept-alive connection: close quietly, as for keep-alive
                return self._close("idle", "", 0, "")
            return self._close("headers", "408 Request Timeout", 408,
                               f"the request's headers did not arrive within {self.shed.header_timeout:g}s "
                               "(api.header_timeout)")
        self._close("body", "408 Request Timeout", 408,
                    f"the request's body did not arrive within {self.shed.body_timeout:g}s (api.body_timeout)")

    def _close(self, why: str, status_line: str, status: int, detail: str) -> None:
        """Answer (when no answer has started) and close; noted once per interval per cause."""
        self._cancel()
        self.shed.done_waiting(self)
        if self.transport.is_closing():
            return
        self.shed.closing.add(self)
        started = self.cycle is not None and getattr(self.cycle, "response_started", False)
        if status and not started:
            body = json.dumps({"status": "error", "detail": detail}).encode()
            head = (f"HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
                    "connection: close\r\n" + ("retry-after: 1\r\n" if status == 503 else "") + "\r\n")
            self.transport.write(head.encode("ascii") + body)
        if self.cycle is not None:
            self.cycle.keep_alive = False
        self.transport.close()
        if why != "idle":
            self.shed.note(why, logging.WARNING, _NOTES[why].format(n=self.shed.max_connections,
                                                                   h=self.shed.header_timeout,
                                                                   b=self.shed.body_timeout))


_NOTES = {
    "evicted": "API: {n} connections open (api.max_connections): closed the one waiting longest for its headers",
    "full": "API: {n} connections open (api.max_connections), all busy: answered 503 to a new one",
    "headers": "API: closed a connection whose request headers took longer than {h:g}s (api.header_timeout)",
    "body": "API: closed a connection whose request body took longer than {b:g}s (api.body_timeout)",
}


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit (at most NOFILE_TARGET); the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE_TARGET if hard == resource.RLIM_INFINITY else min(hard, NOFILE_TARGET)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, want, exc)
    return soft


def connection_cap(configured: int, soft_limit: int) -> int:
    """api.max_connections, lowered so that the connections (and one burst of accepted sockets not yet
    counted) leave FDS_RESERVED descriptors to the daemon."""
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    room = max(MIN_CONNECTIONS, (soft_limit - FDS_RESERVED - ACCEPT_BURST) // FDS_PER_CONNECTION)
    if configured > room:
        log.warning("api.max_connections %d lowered to %d: the open-files limit is %d (ulimit -n) and the daemon "
                    "keeps %d for itself; raise the limit to allow more", configured, room, soft_limit, FDS_RESERVED)
        return room
    return configured
