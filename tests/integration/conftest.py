"""Integration fixtures: real processes (the fake backend started through the rendered templates).

`Host` owns one manifests dir, one config (`binaries:`/`python:` point at a wrapper running
xgen_declare.testing.fake_backend), one state dir, and every process a test starts. Its finalizer
kills the daemon's group, every process carrying the state dir's owner id (setsid escapees included)
and every pid the fakes wrote, even when the test failed.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from xgen_declare.reconciler.client import status_rows
from xgen_declare.processes.state_store import StateStore
from xgen_declare.testing import write_wrapper
from xgen_declare.testing.harness import kill_daemons, marked_by

_ports = itertools.count(0)
FAST = {"backoff_base": 0.3, "backoff_max": 2, "backoff_reset": 5, "liveness_period": 0.3,
        "liveness_threshold": 3, "probe_timeout": 0.5, "resync_interval": 2, "debounce": 0.05}


def port_base() -> int:
    return 21000 + (os.getpid() % 200) * 100 + (next(_ports) % 10) * 10


def manifest(name: str, backend: str = "llama-server-cpu", model_path: str | None = None, **spec) -> str:
    spec.setdefault("ready_timeout", 10)
    spec.setdefault("stop_grace", 2)
    path = model_path or (f"/models/{name}.gguf" if backend != "vllm-cpu" else f"org/{name}")
    body = {"model_path": path, "backend": backend, **spec}
    lines = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in body.items())
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n{lines}\n"


def bad_name_manifests(host) -> dict[str, str]:
    """Manifests whose metadata.name is no model name (issue 12 item 3), by file stem."""
    names = {"dots": "../../x", "shell": f"$(touch {host.root}/p/2)", "nul": "a\0b", "long": "x" * 250,
             "newline": "abc\n"}
    for stem, name in names.items():
        host.write(stem, manifest("placeholder").replace("name: placeholder", f"name: {json.dumps(name)}"))
    return names


NAME_RULE = ("metadata.name: must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits and '-', starting "
             "with a letter or digit)")


class Host:
    def __init__(self, root: Path):
        self.root = root
        self.manifests = root / "manifests"
        self.state = root / "state"
        self.pids = root / "pids"
        for d in (self.manifests, self.state, self.pids):
            d.mkdir()
        self.fake = write_wrapper(root / "fake-backend")
        self.base = port_base()
        self.daemons: list[subprocess.Popen] = []
        self.env = {**os.environ, "XGEN_STATE_DIR": str(self.state), "XDG_CACHE_HOME": str(root / "cache"),
                    "FAKE_PIDDIR": str(self.pids), "PYTHONUNBUFFERED": "1"}
        self.env.pop("XGEN_CONFIG", None)
        self.config()

    # ---- files -----------------------------------------------------------------------------
    def config(self, binaries: dict | None = None, **reconciler) -> None:
        b = {"llama-server-cpu": str(self.fake), "vllm-cpu": str(self.fake)}
        b.update(binaries or {})
        cfg = {"binaries": b, "python": str(self.fake), "ports": {"start": self.base, "end": self.base + 9},
               "reconciler": {**FAST, **reconciler}}
        (self.manifests / "xgen-declare.yaml").write_text(json.dumps(cfg))

    def write(self, name: str, text: str | None = None, **kw) -> Path:
        path = self.manifests / f"{name}.yaml"
        tmp = path.with_name(f".{name}.swp")  # atomic, like an editor's save
        tmp.write_text(text if text is not None else manifest(name, **kw))
        os.replace(tmp, path)
        return path

    # ---- CLI and daemon ----------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "xgen_declare.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start_daemon(self, *extra: str) -> subprocess.Popen:
        log = open(self.root / f"daemon{len(self.daemons)}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", "xgen_declare.cli.main", "run", str(self.manifests), *extra],
                             env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.daemons.append(p)
        return p

    def daemon_log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.root.glob("daemon*.log")))

    def status(self) -> dict[str, dict]:
        return {r["name"]: r for r in status_rows(StateStore(self.state))}

    def wait(self, pred, timeout: float = 15, what: str = "condition") -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        st: dict = {}
        while time.monotonic() < deadline:
            st = self.status()
            try:
                if pred(st):
                    return st
            except KeyError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; status: {json.dumps(st, indent=1)}\n"
                             f"daemon log:\n{self.daemon_log()[-4000:]}")

    def wait_ready(self, *names: str, timeout: float = 15) -> dict[str, dict]:
        return self.wait(lambda s: all(s[n]["state"] == "Ready" for n in names), timeout, f"{names} Ready")

    def fake_pid(self, name: str, role: str) -> int:
        return int((self.pids / f"{name}.{role}.pid").read_text())

    # ---- cleanup ----------------------------------------------------------------------------
    def cleanup(self) -> None:
        kill_daemons(self.daemons)
        victims = marked_by(self.state)
        for f in self.pids.glob("*.pid"):
            try:
                victims.append(psutil.Process(int(f.read_text())))
            except (psutil.Error, ValueError, OSError):
                pass
        for v in victims:
            try:
                if v.environ().get("FAKE_PIDDIR") == str(self.pids):
                    v.kill()
            except psutil.Error:
                pass


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    yield h
    h.cleanup()


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")
