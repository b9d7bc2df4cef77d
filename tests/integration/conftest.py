"""Integration fixtures: real processes (the fake backend started through the rendered templates).

`Host` is the shared harness's FakeHost (xgen_declare.testing.harness) with this suite's settings: one
manifests dir, one config (`binaries:`/`python:` point at a wrapper running
xgen_declare.testing.fake_backend, FAST reconciler timings), one state dir, the fakes' pid files, and
every process a test starts. Its finalizer kills the daemon's group, every process carrying the state
dir's owner id (setsid escapees included) and every pid the fakes wrote, even when the test failed.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import psutil
import pytest

from xgen_declare.testing.gitrepos import SshSigner
from xgen_declare.testing.harness import FakeHost, free_port_block, model_manifest

FAST = {"backoff_base": 0.3, "backoff_max": 2, "backoff_reset": 5, "liveness_period": 0.3,
        "liveness_threshold": 3, "probe_timeout": 0.5, "resync_interval": 2, "debounce": 0.05}


def manifest(name: str, backend: str = "llama-server-cpu", model_path: str | None = None, **spec) -> str:
    spec.setdefault("ready_timeout", 10)
    spec.setdefault("stop_grace", 2)
    # a local directory for vLLM: a hub id (org/NAME) would be fetched into the store first (issue 23)
    path = model_path or (f"/models/{name}.gguf" if backend != "vllm-cpu" else f"/models/{name}-hf")
    return model_manifest(name, backend, path, **spec)


def bad_name_manifests(host) -> dict[str, str]:
    """Manifests whose metadata.name is no model name (issue 12 item 3), by file stem."""
    names = {"dots": "../../x", "shell": f"$(touch {host.root}/p/2)", "nul": "a\0b", "long": "x" * 250,
             "newline": "abc\n"}
    for stem, name in names.items():
        host.write(stem, manifest("placeholder").replace("name: placeholder", f"name: {json.dumps(name)}"))
    return names


NAME_RULE = ("metadata.name: must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits and '-', starting "
             "with a letter or digit)")


class Host(FakeHost):
    """The status is read in-process (the rows `status -o json` prints) every 50 ms; a model not listed
    yet means "not yet"; a daemon that exits does not end a wait (tests kill it on purpose)."""

    status_via_cli, poll, timeout, watch_exit, missing_ok = False, 0.05, 15.0, False, True
    cli_timeout = 60.0

    def __init__(self, root: Path):
        self.pids = Path(root) / "pids"
        self.pids.mkdir()
        super().__init__(root, env={"FAKE_PIDDIR": str(self.pids)})
        self.base = free_port_block(10)  # below the ephemeral range, after the last test's block
        self.config()

    # ---- files -----------------------------------------------------------------------------
    def config(self, binaries: dict | None = None, **reconciler) -> None:
        b = {"llama-server-cpu": str(self.fake), "vllm-cpu": str(self.fake)}
        b.update(binaries or {})
        self.write_config({"binaries": b, "python": str(self.fake), "ports": {"start": self.base, "end": self.base + 9},
                           "reconciler": {**FAST, **reconciler},
                           "store": {"min_free": 0}})  # the host's disk is not these tests' subject (CI's: 8 % free)

    def write(self, name: str, text: str | None = None, **kw) -> Path:
        return super().write(name, text if text is not None else manifest(name, **kw))

    # ---- daemon (the names the tests use) ------------------------------------------------------
    def start_daemon(self, *extra: str) -> subprocess.Popen:
        return self.start(*extra)

    def daemon_log(self) -> str:
        return self.log_text()

    def wait(self, pred, timeout: float | None = None, what: str = "condition") -> dict[str, dict]:
        return self.wait_status(pred, timeout, what)

    def fake_pid(self, name: str, role: str) -> int:
        return int((self.pids / f"{name}.{role}.pid").read_text())

    # ---- cleanup ----------------------------------------------------------------------------
    def strays(self) -> list[psutil.Process]:
        """The processes whose pids the fakes wrote that still run with this host's FAKE_PIDDIR."""
        out = []
        for f in self.pids.glob("*.pid"):
            try:
                p = psutil.Process(int(f.read_text()))
                if p.environ().get("FAKE_PIDDIR") == str(self.pids):
                    out.append(p)
            except (psutil.Error, ValueError, OSError):
                pass
        return out


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


@pytest.fixture
def alice(tmp_path):
    """An SSH signing key (alice@example.org) for the git source's signed commits."""
    return SshSigner.generate(tmp_path / "keys", "alice@example.org")
