"""What the bench scripts (bench/*.py) measure and print with, apart from the daemon they drive
(xgen_declare.testing.harness): the environment line every bench starts with, nearest-rank
percentiles, a /health poller that tells which fake backend's pid answered, and `Figures`, the rows a
bench prints and dumps as JSON for the smoke test (tests/bench/test_bench_smoke.py).

The harness re-exports all four, so `from xgen_declare.testing.harness import Figures` works too.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
from pathlib import Path
from typing import Iterable

__all__ = ["percentile", "environment", "health_pid", "Figures"]


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    data = sorted(values)
    return data[max(0, math.ceil(q / 100 * len(data)) - 1)]


def environment(**versions: str | None) -> str:
    """One line: CPU count, load average, Python and the named tools' versions."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    tools = ", ".join(f"{k} {v or 'absent'}" for k, v in versions.items())
    return (f"environment: {os.cpu_count()} CPUs, load average {load}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}" + (f", {tools}" if tools else ""))


def health_pid(port: int, timeout: float = 0.5, path: str = "/health") -> int | None:
    """The pid of the fake backend answering 200 on PORT (its X-Fake-Pid header), or None; 0 when a
    200 came without the header (a real backend)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            return None
        return int(resp.getheader("X-Fake-Pid") or 0)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


class Figures:
    """The figures of one bench run: printed as rows (`figure: a | b | ratio a/b`), dumped as JSON for
    the smoke test (tests/bench), which checks that every figure was produced."""

    def __init__(self, columns: tuple[str, ...]):
        self.columns = columns
        self.rows: dict[str, dict] = {}

    def add(self, figure: str, *values: float | str | None, unit: str = "ms", ratio: bool = True,
            columns: tuple[str, ...] | None = None) -> None:
        columns = columns or self.columns
        row = dict(zip(columns, values))
        nums = [v for v in values if isinstance(v, (int, float))]
        if ratio and len(values) >= 2 and len(nums) == len(values) and values[1]:
            row["ratio"] = round(values[0] / values[1], 3)
        row["unit"] = unit
        self.rows[figure] = row
        cells = " | ".join(f"{c} {_fmt(v, unit)}" for c, v in zip(columns, values))
        extra = f" | ratio {row['ratio']:.2f}" if "ratio" in row else ""
        print(f"  {figure}: {cells}{extra}", flush=True)

    def dump(self, path: str | None) -> None:
        if path:
            Path(path).write_text(json.dumps(self.rows, indent=1))


def _fmt(v: float | str | None, unit: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.1f} {unit}" if unit == "ms" else f"{v:g} {unit}".rstrip()
