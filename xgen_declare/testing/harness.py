"""One harness for the benchmarks in bench/: a real `xgen-declare run` daemon over a manifests dir,
a state dir and fake backends (`write_wrapper`), plus the small helpers every bench script prints
with (environment line, nearest-rank percentiles, a /health poller that tells which pid answered).

    h = DaemonHarness(Path(tmp), reconciler={"debounce": 0.1})
    h.write("m0", model_manifest("m0", port=31000))
    h.start()                         # or h.start_router() -> "http://127.0.0.1:PORT"
    h.wait(lambda: h.record("m0").get("state") == "Ready")
    h.cleanup()                       # daemon group, every owner-tagged process, every pid it saw

The daemon runs this interpreter (`python -m xgen_declare.cli.main run`), so PYTHONPATH decides
which checkout is measured.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import psutil

from xgen_declare.processes.procs import find_marked
from xgen_declare.testing import write_wrapper

__all__ = ["DaemonHarness", "model_manifest", "save_atomic", "free_port", "free_port_block", "percentile",
           "environment", "health_pid", "kill_pids", "Figures"]


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int, lo: int = 30000, hi: int = 60000) -> int:
    """The first port of N consecutive ports nobody listens on (picked from this pid, then probed)."""
    start = lo + (os.getpid() * 97) % (hi - lo - n)
    for base in [*range(start, hi - n, n), *range(lo, start, n)]:  # from a per-process start, wrapping
        if all(_port_free(p) for p in range(base, base + n)):
            return base
    raise RuntimeError(f"no {n} free consecutive ports in {lo}-{hi}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    data = sorted(values)
    return data[max(0, math.ceil(q / 100 * len(data)) - 1)]


def environment(**versions: str | None) -> str:
    """One line: CPU count, load average, Python and the named tools' versions."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    tools = ", ".join(f"{k} {v or 'absent'}" for k, v in versions.items())
    return (f"environment: {os.cpu_count()} CPUs, load average {load}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}" + (f", {tools}" if tools else ""))


def health_pid(port: int, timeout: float = 0.5, path: str = "/health") -> int | None:
    """The pid of the fake backend answering 200 on PORT (its X-Fake-Pid header), or None; 0 when a
    200 came without the header (a real backend)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            return None
        return int(resp.getheader("X-Fake-Pid") or 0)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class DaemonHarness:
    """A manifests dir (with its xgen-declare.yaml), a state dir and the daemon started on them."""

    def __init__(self, root: Path, *, reconciler: dict | None = None, binaries: dict | None = None,
                 ports: tuple[int, int] | None = None, extra_config: dict | None = None):
        self.root = root
        self.manifests, self.state = root / "manifests", root / "state"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.fake = write_wrapper(root / "fake-backend")
        base = free_port_block(20) if ports is None else ports[0]
        self.ports = ports or (base, base + 19)
        self.env = {**os.environ, "XGEN_STATE_DIR": str(self.state), "XDG_CACHE_HOME": str(root / "cache"),
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("XGEN_CONFIG", None)
        self.daemons: list[subprocess.Popen] = []
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
        (self.manifests / "xgen-declare.yaml").write_text(json.dumps(cfg))

    def write(self, name: str, text: str) -> Path:
        path = self.manifests / f"{name}.yaml"
        save_atomic(path, text)
        return path

    # ---- the daemon --------------------------------------------------------------------------
    def start(self, *extra: str) -> subprocess.Popen:
        log = open(self.root / f"daemon{len(self.daemons)}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", "xgen_declare.cli.main", "run", str(self.manifests), *extra],
                             env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.daemons.append(p)
        return p

    def start_router(self, timeout: float = 60) -> str:
        """The daemon with `--api` on a free port; returns the base URL once /metrics answers."""
        port = free_port()
        self.start("--api", "--api-port", str(port))
        self.wait(lambda: _answers(port, "/metrics"), timeout, poll=0.05, what="the API")
        return f"http://127.0.0.1:{port}"

    def kill_daemon(self) -> None:
        """SIGKILL to the daemon alone (its models run in sessions of their own)."""
        d = self.daemon
        if d is not None and d.poll() is None:
            d.kill()
            d.wait(10)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("daemon*.log")))

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return time.monotonic()
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; daemon log:\n{self.log()[-3000:]}")

    # ---- cleanup -----------------------------------------------------------------------------
    def cleanup(self) -> None:
        kill_daemons(self.daemons)
        for v in marked_by(self.state):
            try:
                v.kill()
            except psutil.Error:
                pass
        mine = [pid for pid in self.seen_pids if _is_fake_of(pid, self.root)]
        kill_pids(mine)


def kill_daemons(daemons) -> None:
    """SIGKILL each daemon still running, with its process group (what it started may outlive it)."""
    for p in daemons:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)


def marked_by(state: Path) -> list:
    """The processes carrying the owner marker of the daemons of STATE (its owner_id file)."""
    owner = state / "owner_id"
    return find_marked(owner.read_text().strip() + "/") if owner.exists() else []


def _is_fake_of(pid: int, root: Path) -> bool:
    try:
        return any(str(root) in part for part in psutil.Process(pid).cmdline())
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


class Figures:
    """The figures of one bench run: printed as rows (`figure: a | b | ratio a/b`), dumped as JSON for
    the smoke test (tests/bench), which checks that every figure was produced."""

    def __init__(self, columns: tuple[str, ...]):
        self.columns = columns
        self.rows: dict[str, dict] = {}

    def add(self, figure: str, *values: float | str | None, unit: str = "ms", ratio: bool = True,
            columns: tuple[str, ...] | None = None) -> None:
        columns = columns or self.columns
        row = dict(zip(columns, values))
        nums = [v for v in values if isinstance(v, (int, float))]
        if ratio and len(values) >= 2 and len(nums) == len(values) and values[1]:
            row["ratio"] = round(values[0] / values[1], 3)
        row["unit"] = unit
        self.rows[figure] = row
        cells = " | ".join(f"{c} {_fmt(v, unit)}" for c, v in zip(columns, values))
        extra = f" | ratio {row['ratio']:.2f}" if "ratio" in row else ""
        print(f"  {figure}: {cells}{extra}", flush=True)

    def dump(self, path: str | None) -> None:
        if path:
            Path(path).write_text(json.dumps(self.rows, indent=1))


def _fmt(v: float | str | None, unit: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.1f} {unit}" if unit == "ms" else f"{v:g} {unit}".rstrip()
