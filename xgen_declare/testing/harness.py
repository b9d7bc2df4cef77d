"""The one harness that runs a real `xgen-declare run` daemon for the integration tests, the e2e tests
and the benches: manifests and config written into a temp dir, the daemon started as a subprocess with
its own state dir, states waited for through `status -o json`, the daemon stopped, and everything it
started swept away afterwards (even when the test failed).

    d = Daemon(manifests, state, log)         # e2e: real backends, the caller's manifests and config
    d.start(); d.wait_ready("chat"); d.cleanup()

    h = DaemonHarness(Path(tmp), reconciler={"debounce": 0.1})   # benches: fake backends, see FakeHost
    h.write("m0", model_manifest("m0", port=31000))
    h.start()                         # or h.start_router() -> "http://127.0.0.1:PORT"
    h.wait(lambda: h.record("m0").get("state") == "Ready")
    h.cleanup()                       # daemon group, every owner-tagged process, every pid it saw

tests/integration/conftest.py (`Host`), tests/e2e/conftest.py (`Daemon`) and bench/*.py are thin
layers over these classes. The daemon runs this interpreter (`python -m xgen_declare.cli.main run`),
so PYTHONPATH decides which checkout is tested or measured.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import psutil

from xgen_declare.desired.ports import ephemeral_range
from xgen_declare.processes.pids import find_marked
from xgen_declare.testing import write_wrapper
# re-exported: bench/*.py import them from here
from xgen_declare.testing.benchkit import Figures, environment, health_pid, percentile  # noqa: F401

__all__ = ["Daemon", "FakeHost", "DaemonHarness", "model_manifest", "save_atomic", "write_config", "free_port",
           "free_port_block", "poll_until", "kill_daemons", "marked_by", "sweep", "kill_pids",
           "percentile", "environment", "health_pid", "Figures"]

CONFIG_FILE = "xgen-declare.yaml"


# ---- files -----------------------------------------------------------------------------------
def model_manifest(name: str, backend: str = "llama-server-cpu", model_path: str | None = None, **spec) -> str:
    """A manifest for NAME; every spec value is written as JSON (lists and mappings included)."""
    body = {"model_path": model_path or f"/models/{name}.gguf", "backend": backend, **spec}
    lines = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in body.items())
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n{lines}\n"


def save_atomic(path: Path, text: str) -> None:
    """Write like an editor's save: a hidden temporary file renamed over the target."""
    tmp = path.with_name("." + path.name + ".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_config(manifests: Path, cfg: dict) -> Path:
    """MANIFESTS/xgen-declare.yaml holding CFG (JSON is YAML)."""
    path = manifests / CONFIG_FILE
    path.write_text(json.dumps(cfg))
    return path


# ---- ports -----------------------------------------------------------------------------------
# Ports handed to servers are picked outside the kernel's ephemeral range: an outgoing connection (a probe,
# the router's upstream, a client) takes its local port from that range, and while it is open or in
# TIME_WAIT (60 s) a server cannot bind that port, SO_REUSEADDR or not. CI saw a backend exit 1 that way.
_after_last: list[int] = []  # [the end of the last block this process handed out]: successive picks differ


def pick_range() -> tuple[int, int]:
    """[lo, hi) to pick test ports from: below the ephemeral range, else above it."""
    eph_lo, eph_hi = ephemeral_range()
    if eph_lo - 20000 >= 2000:
        return 20000, eph_lo
    if 65535 - eph_hi >= 2000:
        return eph_hi + 1, 65536
    return 20000, 65536  # the whole range is ephemeral: nothing better to do


def free_port() -> int:
    """A port nobody listens on now, outside the ephemeral range (never the kernel's pick: that is in it)."""
    return free_port_block(1)


def free_port_block(n: int, lo: int | None = None, hi: int | None = None) -> int:
    """The first port of N consecutive ports nobody listens on, in [lo, hi) (default: `pick_range()`; a
    given range is clipped to it, and replaced by it when nothing is left). The search starts after the
    last block this process picked (the first time: at a place derived from the pid), wrapping."""
    r_lo, r_hi = pick_range()
    lo, hi = max(lo or r_lo, r_lo), min(hi or r_hi, r_hi)
    if hi - lo < n:  # nothing of the given range is outside the ephemeral one
        lo, hi = r_lo, r_hi
    after = _after_last[0] if _after_last else None
    start = after if after is not None and lo <= after <= hi - n else lo + (os.getpid() * 97) % (hi - lo - n + 1)
    for base in [*range(start, hi - n + 1, n), *range(lo, start, n)]:
        if all(_port_free(p) for p in range(base, base + n)):
            _after_last[:] = [base + n]
            return base
    raise RuntimeError(f"no {n} free consecutive ports in {lo}-{hi}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ---- the daemon ------------------------------------------------------------------------------
class Daemon:
    """`xgen-declare run MANIFESTS` with state dir STATE, started as often as a test likes, and the CLI
    run against the same state dir. Every daemon started is kept in `daemons`; `proc` is the one started
    last (None once `kill_daemon` killed it). Output of every start goes to LOG (appended) or, without
    LOG, to STATE's parent/daemon<N>.log.

    How status is read and waited for (class attributes, set by the layers above):
      status_via_cli  `status -o json` in a subprocess (True), or the same rows read in-process
      poll, timeout   seconds between two reads / default wait
      watch_exit      a wait fails at once when `proc` exited
      missing_ok      a predicate's KeyError (a model not listed yet) means "not yet"
    """

    status_via_cli, poll, timeout, watch_exit, missing_ok = True, 0.3, 90.0, True, False
    cli_timeout = 120.0

    def __init__(self, manifests: Path, state: Path, log: Path | None = None, env: dict | None = None):
        self.manifests, self.state, self.log_file = Path(manifests), Path(state), log
        self.env = {**os.environ, "XGEN_STATE_DIR": str(self.state), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.daemons: list[subprocess.Popen] = []
        self.logs: list[Path] = [Path(log)] if log else []
        self.proc: subprocess.Popen | None = None

    # ---- running ---------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "xgen_declare.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout or self.cli_timeout)

    def start(self, *extra: str, target: tuple[str, ...] | None = None) -> subprocess.Popen:
        """`run MANIFESTS EXTRA...` in a session of its own (so its group can be killed); `target` replaces
        MANIFESTS (a git+URL, or () for the config's `source:`)."""
        path = Path(self.log_file or self.state.parent / f"daemon{len(self.daemons)}.log")
        if path not in self.logs:
            self.logs.append(path)
        with open(path, "ab") as out:
            what = (str(self.manifests),) if target is None else target
            p = subprocess.Popen([sys.executable, "-m", "xgen_declare.cli.main", "run", *what, *extra],
                                 env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.daemons.append(p)
        self.proc = p
        return p

    def kill_daemon(self, group: bool = False) -> None:
        """SIGKILL to the daemon started last: alone (its models run in sessions of their own), or with
        its process group."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            if group:
                os.killpg(p.pid, signal.SIGKILL)
            else:
                p.kill()
            p.wait(10)

    # ---- reading -----------------------------------------------------------------------------
    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def owner_prefix(self) -> str | None:
        """The owner id the daemons of this state dir put in every child's XGEN_DECLARE_OWNER."""
        try:
            return (self.state / "owner_id").read_text().strip() or None
        except OSError:
            return None

    def status(self) -> dict[str, dict]:
        """The rows of `status -o json`, by model name."""
        if self.status_via_cli:
            r = self.cli("status", "-o", "json")
            assert r.returncode == 0, r.stderr
            rows = json.loads(r.stdout)
        else:  # the rows the CLI would print, without a subprocess per poll
            from xgen_declare.processes.state_store import StateStore
            from xgen_declare.reconciler.client import status_rows
            rows = [r.to_json() for r in status_rows(StateStore(self.state))]
        return {m["name"]: m for m in rows}

    def wait_status(self, pred: Callable[[dict[str, dict]], object], timeout: float | None = None,
                    what: str = "condition") -> dict[str, dict]:
        """Read the status until PRED(status) holds and return that status; AssertionError (with the
        last status and the daemon log) after TIMEOUT, or as soon as the daemon exits (watch_exit)."""
        last: dict = {}

        def holds() -> bool:
            nonlocal last
            if self.watch_exit and self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
            last = self.status()
            try:
                return bool(pred(last))
            except KeyError:
                if not self.missing_ok:
                    raise
                return False

        timeout = self.timeout if timeout is None else timeout
        if poll_until(holds, timeout, self.poll) is None:
            raise AssertionError(f"timed out waiting for {what}; last status: {json.dumps(last, indent=1)}\n"
                                 f"daemon log:\n{self.log_text()[-4000:]}")
        return last

    def wait_ready(self, *names: str, timeout: float | None = None) -> dict[str, dict]:
        return self.wait_status(lambda s: all(s.get(n, {}).get("state") == "Ready" for n in names), timeout,
                                f"{sorted(names)} Ready")

    # ---- cleanup -----------------------------------------------------------------------------
    def strays(self) -> list[psutil.Process]:
        """Processes this run started that may carry no owner marker (a layer above knows them)."""
        return []

    def cleanup(self) -> None:
        sweep(self.daemons, self.state, self.strays())

    def leftovers(self) -> list[psutil.Process]:
        """Live (not zombie) processes still carrying this state dir's owner marker."""
        return [p for p in marked_by(self.state) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


class FakeHost(Daemon):
    """A daemon over fake backends in one temp ROOT: ROOT/manifests (with its xgen-declare.yaml, written
    by `write_config`), ROOT/state, ROOT/daemon<N>.log, a `fake` wrapper (xgen_declare.testing.fake_backend
    behind a binary's name), its own XDG cache, and no XGEN_CONFIG from the caller's environment."""

    def __init__(self, root: Path, env: dict | None = None):
        self.root = Path(root)
        super().__init__(self.root / "manifests", self.root / "state",
                         env={"XDG_CACHE_HOME": str(self.root / "cache"), **(env or {})})
        self.env.pop("XGEN_CONFIG", None)
        for d in (self.manifests, self.state):
            d.mkdir(parents=True, exist_ok=True)
        self.fake = write_wrapper(self.root / "fake-backend")

    def write_config(self, cfg: dict) -> Path:
        return write_config(self.manifests, cfg)

    def write(self, name: str, text: str) -> Path:
        path = self.manifests / f"{name}.yaml"
        save_atomic(path, text)
        return path


# ---- the benches' layer ------------------------------------------------------------------------
class DaemonHarness(FakeHost):
    """What bench/*.py drive: a FakeHost on a block of free ports, models read from their state files."""

    def __init__(self, root: Path, *, reconciler: dict | None = None, binaries: dict | None = None,
                 ports: tuple[int, int] | None = None, extra_config: dict | None = None):
        super().__init__(root)
        base = free_port_block(20) if ports is None else ports[0]
        self.ports = ports or (base, base + 19)
        self.seen_pids: set[int] = set()
        self.config(reconciler=reconciler, binaries=binaries, extra=extra_config)

    @property
    def daemon(self) -> subprocess.Popen | None:
        return self.daemons[-1] if self.daemons else None

    def config(self, *, reconciler: dict | None = None, binaries: dict | None = None, extra: dict | None = None):
        b = {"llama-server-cpu": str(self.fake), **(binaries or {})}
        cfg = {"binaries": b, "ports": {"start": self.ports[0], "end": self.ports[1]}, **(extra or {})}
        if reconciler:
            cfg["reconciler"] = reconciler
        self.write_config(cfg)

    def start_router(self, timeout: float = 60) -> str:
        """The daemon with `--api` on a free port; returns the base URL once /metrics answers."""
        port = free_port()
        self.start("--api", "--api-port", str(port))
        self.wait(lambda: _answers(port, "/metrics"), timeout, poll=0.05, what="the API")
        return f"http://127.0.0.1:{port}"

    def log(self) -> str:
        return self.log_text()

    def record(self, name: str) -> dict:
        try:
            rec = json.loads((self.state / "models" / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}
        if rec.get("pid"):
            self.seen_pids.add(rec["pid"])
        return rec

    def all_ready(self, names: Iterable[str]) -> bool:
        return all(self.record(n).get("state") == "Ready" for n in names)

    def wait(self, pred: Callable[[], bool], timeout: float = 60, poll: float = 0.005,
             what: str = "condition") -> float:
        """Poll PRED; returns the monotonic time it first held. Raises with the daemon log on timeout."""
        held = poll_until(pred, timeout, poll)
        if held is None:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; daemon log:\n{self.log()[-3000:]}")
        return held

    def strays(self) -> list[psutil.Process]:
        """The fakes whose pids a record showed (their command line names ROOT)."""
        return [p for p in _processes(self.seen_pids) if _cmdline_has(p, str(self.root))]


# ---- waiting and cleanup -------------------------------------------------------------------
def poll_until(pred: Callable[[], object], timeout: float, poll: float) -> float | None:
    """Call PRED every POLL seconds until it is true: the monotonic time it was, or None after TIMEOUT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(poll)
    return None


def kill_daemons(daemons: Iterable[subprocess.Popen]) -> None:
    """SIGKILL each daemon still running, with its process group (what it started may outlive it)."""
    for p in daemons:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)


def marked_by(state: Path) -> list[psutil.Process]:
    """The processes carrying the owner marker of the daemons of STATE (its owner_id file)."""
    owner = state / "owner_id"
    return find_marked(owner.read_text().strip() + "/") if owner.exists() else []


def sweep(daemons: Iterable[subprocess.Popen], state: Path, strays: Iterable[psutil.Process] = ()) -> None:
    """Kill DAEMONS with their groups, then every process carrying STATE's owner marker with its group
    (setsid escapees included), then STRAYS."""
    kill_daemons(daemons)
    marked = marked_by(state)
    for p in marked:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for p in [*marked, *strays]:
        try:
            p.kill()
        except psutil.Error:
            pass


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _processes(pids: Iterable[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return out


def _cmdline_has(p: psutil.Process, text: str) -> bool:
    try:
        return any(text in part for part in p.cmdline())
    except psutil.Error:
        return False


def _answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
