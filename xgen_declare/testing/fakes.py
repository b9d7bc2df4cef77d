"""In-process fakes for the Supervisor's seams: a clock, processes, probes and a state-dir writer.

    clock = FakeClock()
    world = FakeProcesses()                  # popen seam + stand-ins for pids.signal_group/find_marked
    sup = Supervisor(store, settings, clock=clock, popen=world.popen, prober=FakeProber(), proc_root=...)
    world.install(monkeypatch)               # signals reach the fake processes, never a real pid

Fake pids start above the kernel's largest pid (2**22), so a signal that slipped past the fakes
could never reach a real process. `FailingWriter` stands in for `state_store.atomic_write` and
raises the OSError a read-only or full state dir gives (EROFS, ENOSPC, ...), for the paths it is
told to fail.
"""

from __future__ import annotations

import errno as errno_mod
import itertools
import os
import signal
from pathlib import Path

from xgen_declare.processes.probes import ProbeResult
from xgen_declare.processes.spec import Rendered
from xgen_declare.processes.state_store import atomic_write

FIRST_FAKE_PID = 2**22 + 1000


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeProcess:
    """What the Supervisor uses of a Popen: pid, poll(), returncode."""

    def __init__(self, pid: int, argv: list[str]):
        self.pid, self.argv = pid, list(argv)
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def exit(self, code: int = 1) -> None:
        if self.returncode is None:
            self.returncode = code


class FakeProcesses:
    def __init__(self, exit_on_sigterm: bool = True):
        self.started: list[FakeProcess] = []
        self.exit_on_sigterm = exit_on_sigterm
        self._pids = itertools.count(FIRST_FAKE_PID)

    def popen(self, argv, **_kw) -> FakeProcess:
        proc = FakeProcess(next(self._pids), argv)
        self.started.append(proc)
        return proc

    def by_pid(self, pid: int) -> FakeProcess | None:
        return next((p for p in self.started if p.pid == pid), None)

    def signal_group(self, pgid: int, sig: int) -> bool:
        proc = self.by_pid(pgid)
        if proc is None or proc.returncode is not None:
            return False
        proc.signals.append(sig)
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and self.exit_on_sigterm):
            proc.exit(-sig)
        return True

    def install(self, monkeypatch) -> "FakeProcesses":
        from xgen_declare.processes import pids

        monkeypatch.setattr(pids, "signal_group", self.signal_group)
        monkeypatch.setattr(pids, "find_marked", lambda prefix: [])
        return self

    @property
    def last(self) -> FakeProcess:
        return self.started[-1]


class FakeProber:
    """Every probe answers `ok` at once (set `ok = False` for a failing backend)."""

    def __init__(self, ok: bool = True):
        self.ok = ok
        self._pending: dict[str, str] = {}

    def start(self, name: str, url: str) -> None:
        self._pending.setdefault(name, url)

    def busy(self, name: str) -> bool:
        return name in self._pending

    def result(self, name: str) -> ProbeResult | None:
        url = self._pending.pop(name, None)
        if url is None:
            return None
        return ProbeResult(self.ok, f"GET {url}: {200 if self.ok else 503}")

    def forget(self, name: str) -> None:
        self._pending.pop(name, None)

    def close(self) -> None:
        pass


class FailingWriter:
    """`atomic_write` that fails with `errno` for paths under any of `failing` (all paths when empty)."""

    def __init__(self, err: int = errno_mod.EROFS):
        self.err = err
        self.failing: list[Path] | None = None   # None: write normally
        self.attempts: list[Path] = []

    def fail(self, *under: str | os.PathLike) -> None:
        self.failing = [Path(u) for u in under]

    def heal(self) -> None:
        self.failing = None

    def __call__(self, path: Path, text: str) -> None:
        self.attempts.append(path)
        if self.failing is not None and (not self.failing or any(f in path.parents or f == path
                                                                  for f in self.failing)):
            raise OSError(self.err, os.strerror(self.err), str(path.with_name(f".{path.name}.tmp")))
        atomic_write(path, text)


def spec(name: str, port: int = 8001, *, version: str = "1", ready_timeout: float = 60,
         stop_grace: float = 5) -> Rendered:
    """A rendered spec for the fake processes; a different `version` is a different spec hash."""
    return Rendered(name=name, backend="llama-server-cpu", argv=["fake-server", "--port", str(port), "-v", version],
                    env={}, port=port, host="127.0.0.1", endpoint=f"http://127.0.0.1:{port}",
                    readiness_path="/health", binary="fake-server", dialect=None, backend_reason="test",
                    port_source="test", ready_timeout=ready_timeout, stop_grace=stop_grace)
