"""Run a probe command with a hard timeout; never raises.

The child gets its own session so a timeout kills its whole process group: a hung shell wrapper
whose grandchild holds the pipes open would otherwise block `communicate()` forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeResult:
    rc: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # why it did not run to completion (not found, timed out, ...)

    @property
    def ok(self) -> bool:
        return self.error is None and self.rc == 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        if self.error:
            return self.error
        last = next((ln.strip() for ln in reversed(self.output.splitlines()) if ln.strip()), "")
        return f"exited with {self.rc}" + (f": {last[:160]}" if last else "")


def run_probe(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> ProbeResult:
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True, env=env)
    except OSError as exc:
        return ProbeResult(None, error=f"cannot run ({exc.strerror or exc})")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.communicate(timeout=2)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            pass
        return ProbeResult(None, error=f"timed out after {timeout:g}s")
    rc = proc.returncode
    if rc is not None and rc < 0:
        return ProbeResult(rc, out, err, error=f"killed by signal {-rc}")
    return ProbeResult(rc, out, err)
