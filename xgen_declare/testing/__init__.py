"""Test helpers: the fake backend (`fake_backend`) and wrappers that make it look like a real binary.

`write_wrapper(path)` writes an executable that runs the fake with this interpreter; point the config's
`binaries:` (llama-server-*, vllm-*) or `python:` (llama-cpp-python) at it, so the fake is started
through the rendered templates like a real backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["write_wrapper"]


def write_wrapper(path: str | os.PathLike, python: str | None = None) -> Path:
    path = Path(path)
    path.write_text(f"#!{python or sys.executable}\n"
                    "from xgen_declare.testing.fake_backend import main\nmain()\n")
    path.chmod(0o755)
    return path
