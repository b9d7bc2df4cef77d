"""Cross-check our layer choice with llama.cpp's own `llama-fit-params` (new builds ship it next to
llama-server). It runs llama.cpp's --fit logic against the devices *this* host has and prints the
fitted arguments on stdout, e.g. `-c 8192 -ngl 33 -ts 20,13`.

When each is used: xgen-declare's chooser decides at plan time for every model together (it knows the
other models' memory and can run for another host from an inventory file); `llama-fit-params` only
sees one model and this host's free memory right now, so it is offered as a second opinion
(`xgen-declare fit MODEL --cross-check`), never as the source of truth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from xgen_declare.backends.families import LLAMA_SERVER_BACKENDS
from xgen_declare.inventory.model import Inventory


@dataclass
class CrossCheck:
    tool: str | None
    args: list[str]
    n_gpu_layers: str | None = None
    tensor_split: str | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return {"tool": self.tool, "args": self.args, "n_gpu_layers": self.n_gpu_layers,
                "tensor_split": self.tensor_split, "error": self.error}


def find_fit_params(inventory: Inventory) -> str | None:
    for name in LLAMA_SERVER_BACKENDS:
        b = inventory.backend(name)
        if b is not None and b.available and b.binary:
            candidate = os.path.join(os.path.dirname(b.binary), "llama-fit-params")
            if os.access(candidate, os.X_OK):
                return candidate
    return shutil.which("llama-fit-params")


def parse_fitted(stdout: str) -> list[str]:
    """The last non-empty line of stdout holds the fitted CLI arguments."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1].split() if lines else []


def _value(args: list[str], *flags: str) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a in flags:
            return args[i + 1]
    return None


def cross_check(model: str, ctx_size: int | None, margin_mib: int, inventory: Inventory,
                timeout: float = 120.0) -> CrossCheck:
    tool = find_fit_params(inventory)
    if tool is None:
        return CrossCheck(None, [], error="llama-fit-params not found next to llama-server or on PATH")
    argv = [tool, "-m", model, "-c", str(ctx_size or 0), "-fitt", str(margin_mib)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              errors="replace")
    except (OSError, subprocess.SubprocessError) as exc:
        return CrossCheck(tool, [], error=f"{tool}: {exc}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return CrossCheck(tool, [], error=f"{tool} exited {proc.returncode}: {tail[0][:200]}")
    args = parse_fitted(proc.stdout)
    return CrossCheck(tool, args, _value(args, "-ngl", "--n-gpu-layers", "--gpu-layers"),
                      _value(args, "-ts", "--tensor-split"))
