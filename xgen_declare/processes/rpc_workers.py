"""llama.cpp RPC groups, the process side: a model's llama-server plus its local `rpc_workers`
(ggml-rpc-server) as one group, carried out by `Workers` for the supervisor (rendering: desired/rpc.py).

  start   every local worker first (any earlier one is stopped), each until its port accepts
          connections, then llama-server;
  stop    llama-server first (the supervisor's ordinary stop), then the workers;
  crash   a dead worker fails the server (server-first stop, crash back-off); a dead server takes its
          workers down; the next start starts the whole group again.

Workers carry XGEN_DECLARE_OWNER=OWNER/NAME+rpc/PORT/SPAWN: outside the model's own prefix OWNER/NAME/
(names never hold '+'), so the supervisor's stop of the server never reaches them before it is gone.
The waits here block the supervisor loop, bounded by `rpc.ready_timeout` and WORKER_STOP_GRACE: a
worker binds its port in milliseconds and dies on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

import psutil

from xgen_declare.processes import pids
from xgen_declare.processes.logfiles import open_log
from xgen_declare.processes.state_store import OWNER_ENV

WORKER_STOP_GRACE = 5.0


@dataclass(frozen=True)
class WorkerSpec:
    """One local worker as rendered: what to run and where it must accept connections."""

    host: str
    port: int
    argv: tuple[str, ...]
    ready_timeout: float = 30.0

    @property
    def connect_host(self) -> str:
        bind = self.argv[self.argv.index("--host") + 1] if "--host" in self.argv else "127.0.0.1"
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)


def _accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Workers:
    """The local workers of each model, started and stopped around its llama-server."""

    def __init__(self, owner: str, log_path: Callable[[str], str], popen: Callable = subprocess.Popen):
        self.owner = owner
        self.log_path = log_path
        self.popen = popen
        self.running: dict[str, dict[int, psutil.Process]] = {}  # model -> port -> process

    def prefix(self, name: str) -> str:
        return f"{self.owner}/{name}+rpc/"

    def start(self, name: str, workers: list[WorkerSpec], env: dict[str, str]) -> str | None:
        """Start the group's workers and wait until each accepts connections; None, or why it failed
        (the workers started so far are stopped again)."""
        self.stop(name)
        if not workers:
            return None
        started: dict[int, psutil.Process] = {}
        self.running[name] = started
        for w in workers:
            marker = f"{self.prefix(name)}{w.port}/{os.urandom(4).hex()}"
            fd = open_log(self.log_path(name), f"starting RPC worker {w.host}:{w.port} of {name}: "
                                                f"{' '.join(w.argv)}")
            try:
                child = self.popen(list(w.argv), stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                   env={**env, OWNER_ENV: marker}, start_new_session=True, close_fds=True)
            except OSError as exc:
                self.stop(name)
                return f"cannot execute RPC worker {w.argv[0]}: {exc.strerror or exc}"
            finally:
                os.close(fd)
            started[w.port] = psutil.Process(child.pid)
            why = self._wait_ready(w, child)
            if why:
                self.stop(name)
                return why
        return None

    @staticmethod
    def _wait_ready(w: WorkerSpec, child) -> str | None:
        deadline = time.monotonic() + w.ready_timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                return f"RPC worker {w.host}:{w.port} exited with code {child.returncode} during start"
            if _accepts(w.connect_host, w.port):
                return None
            time.sleep(0.05)
        return f"RPC worker {w.host}:{w.port} accepted no connection within {w.ready_timeout:g}s"

    def dead(self, name: str, workers: list[WorkerSpec]) -> str | None:
        """Why the group is broken (a wanted worker not running), or None."""
        if not workers:
            return None
        tracked = self.running.get(name)
        if tracked is None:  # adopted after a daemon restart: find them by their tag
            tracked = {}
            for p in pids.find_marked(self.prefix(name)):
                try:
                    tracked[int(p.environ()[OWNER_ENV].split("/")[-2])] = p
                except (psutil.Error, OSError, KeyError, ValueError):
                    continue
            self.running[name] = tracked
        for w in workers:
            p = tracked.get(w.port)
            if p is None or not _alive(p):
                return f"RPC worker {w.host}:{w.port} is not running"
        return None

    def stop(self, name: str) -> None:
        """Stop the model's workers (tracked, or found by tag) and wait until they are gone."""
        self.running.pop(name, None)
        victims = [p for p in pids.find_marked(self.prefix(name)) if _alive(p)]
        if not victims:
            return
        for p in victims:
            _signal(p, signal.SIGTERM)
        _, alive = psutil.wait_procs(victims, timeout=WORKER_STOP_GRACE)
        for p in alive:
            _signal(p, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=2)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)  # its own session: helpers it started go too
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.send_signal(sig)
    except psutil.Error:
        pass
