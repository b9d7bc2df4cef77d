"""Reconciler figures (a script that prints numbers, not a test). Real `xgen-declare run` daemon, fake
backends started through the rendered templates, default reconciler settings (debounce 100 ms).

    .venv/bin/python bench/reconciler.py [--edits 50] [--models 20] [--manifests 1000] [--idle 60]

  1. save-to-spawn latency: an atomic save of one manifest (ctx_size changed) -> the new process's pid
     is in the state dir (the old process is stopped first); p50/p95 over N edits
  2. restarts caused by editing 1 of M running models (pid changes + restarts counters; must be 1)
  3. plan time over K manifests (wide port range): observe+render+plan, and the pure plan() alone
  4. daemon idle CPU % and RSS over S seconds with M Ready models
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xgen_declare.config import Config, Ports  # noqa: E402
from xgen_declare.inventory.model import Inventory  # noqa: E402
from xgen_declare.reconciler.plan import plan  # noqa: E402
from xgen_declare.reconciler.apply import compute  # noqa: E402
from xgen_declare.testing.harness import DaemonHarness, environment, free_port_block, model_manifest, percentile


def manifest(name: str, ctx: int = 4096) -> str:
    return model_manifest(name, ctx_size=ctx)


def harness(root: Path, models: int) -> tuple[DaemonHarness, list[str]]:
    """The shared harness on a port block wide enough for MODELS, with their manifests written."""
    width = max(models, 20)
    base = free_port_block(width)
    h = DaemonHarness(root, ports=(base, base + width - 1))
    names = [f"m{i:02d}" for i in range(models)]
    for n in names:
        h.write(n, manifest(n))
    return h, names


def bench_edits(h: DaemonHarness, names: list[str], edits: int) -> None:
    lat = []
    name = names[0]
    for i in range(edits):
        old = h.record(name).get("pid")
        t0 = time.monotonic()
        h.write(name, manifest(name, 8192 if i % 2 == 0 else 4096))
        t1 = h.wait(lambda: h.record(name).get("pid") not in (None, old), poll=0.002)
        lat.append((t1 - t0) * 1000)
        h.wait(lambda: h.record(name).get("state") == "Ready", poll=0.01)
    p95 = percentile(lat, 95)
    print(f"save-to-spawn latency over {edits} edits: p50 {statistics.median(lat):.0f} ms, p95 {p95:.0f} ms, "
          f"max {max(lat):.0f} ms (debounce 100 ms included)")


def bench_one_of_many(h: DaemonHarness, names: list[str]) -> None:
    before = {n: (h.record(n)["pid"], h.record(n)["restarts"]) for n in names}
    target = names[len(names) // 2]
    h.write(target, manifest(target, 2048))
    h.wait(lambda: h.record(target).get("pid") != before[target][0] and h.record(target).get("state") == "Ready",
           poll=0.002)
    time.sleep(2.0)  # anything else that was going to happen has happened
    after = {n: (h.record(n).get("pid"), h.record(n).get("restarts")) for n in names}
    changed = [n for n in names if after[n][0] != before[n][0]]
    counted = sum(after[n][1] - before[n][1] for n in names)
    print(f"restarts caused by editing 1 of {len(names)} running models: {len(changed)} process replaced "
          f"({', '.join(changed)}), restarts counters +{counted}")


def bench_idle(h: DaemonHarness, names: list[str], seconds: float) -> None:
    assert h.daemon is not None
    p = psutil.Process(h.daemon.pid)
    time.sleep(2)
    c0, t0 = p.cpu_times(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = p.cpu_times(), time.monotonic()
    cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0) * 100
    rss = p.memory_info().rss / 2**20
    print(f"daemon idle with {len(names)} Ready models over {seconds:.0f} s: CPU {cpu:.2f} %, RSS {rss:.1f} MiB "
          f"(liveness probe every 10 s per model)")


def bench_plan(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            Path(d, f"m{i:04d}.yaml").write_text(manifest(f"m{i:04d}"))
        config = Config(ports=Ports(start=20000, end=29999))
        inv = Inventory()
        t0 = time.perf_counter()
        result = compute([d], config, inv, {}, ports_in_use=set)
        t1 = time.perf_counter()
        wants = result.wants
        t2 = time.perf_counter()
        plan(wants, {})
        t3 = time.perf_counter()
        assert len(result.plan.actions) == n, result.problems[:3]
        print(f"plan over {n} manifests: {(t1 - t0) * 1000:.0f} ms load+validate+render+plan, "
              f"{(t3 - t2) * 1000:.1f} ms pure plan()")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--manifests", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=60)
    args = ap.parse_args()
    print(environment())
    bench_plan(args.manifests)
    with tempfile.TemporaryDirectory() as d:
        h, names = harness(Path(d), args.models)
        try:
            h.start()
            h.wait(lambda: h.all_ready(names), timeout=120, poll=0.05)
            bench_one_of_many(h, names)
            bench_idle(h, names, args.idle)
            bench_edits(h, names, args.edits)
        except TimeoutError as exc:
            raise SystemExit(str(exc)) from None
        finally:
            h.cleanup()


if __name__ == "__main__":
    main()
