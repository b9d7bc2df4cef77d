"""On-demand cold start: what the router adds to a backend's own start (a script that prints figures).

    .venv/bin/python bench/cold_start.py [--reps 10] [--quick] [--json FILE] [--llama-server PATH]

For each backend (the fake backend with a 0.3 s load; the real llama-server with the tiny GGUF
when one is found), each repetition measures, in turn:
  direct  the argv and env our renderer produces for the model, started with Popen: spawn ->
          readiness path answers 200 (polled every 2 ms), then the first streamed chat request's
          time to first body byte; direct = the sum
  ours    a streamed chat request through `xgen-declare run --api` for an Idle on-demand model
          (`activation: on-demand`, a fresh model each repetition): request sent -> first body byte
overhead = ours - direct (median over the repetitions; one untimed direct start first warms the page
cache, and the order of direct and ours alternates). Goal: <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from httpload import Conn  # noqa: E402
from vs_litellm import find_llama_server  # noqa: E402
from xgen_declare.testing.harness import (DaemonHarness, Figures, environment, free_port_block, health_pid, model_manifest)

PATH = "/v1/chat/completions"


def first_byte(port: int, model: str, timeout: float = 120) -> float:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}

    async def go():
        c = Conn("127.0.0.1", port)
        r = await c.request("POST", PATH, body, timeout=timeout)
        c.close()
        return r

    r = asyncio.run(go())
    if r.error:
        raise SystemExit(f"request for {model} on port {port} failed: {r.error}")
    return r.ttfb


def render(h: DaemonHarness, name: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "xgen_declare.cli.main", "render", str(h.manifests), "-o", "json"],
                         env=h.env, capture_output=True, text=True, check=True)
    return next(m for m in json.loads(out.stdout) if m["name"] == name)


def direct(spec: dict, root: Path, model: str, port: int) -> tuple[float, float]:
    """(spawn -> Ready, first request's TTFB) in seconds, for the rendered argv on PORT."""
    argv = [str(port) if a == str(spec["port"]) else a for a in spec["argv"]]
    env = {**os.environ, **spec["env"]}
    with open(root / "direct.log", "a") as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while health_pid(port, timeout=1, path=spec["readiness_path"]) is None:
                if p.poll() is not None:
                    log.flush()  # the temp dir goes with the exit: say what the log says
                    tail = (root / "direct.log").read_text(errors="replace").splitlines()[-15:]
                    raise SystemExit(f"direct start on port {port} exited ({p.returncode}); direct.log ends:\n"
                                     + "\n".join(tail))
                if time.perf_counter() - t0 > 120:
                    raise SystemExit("direct start not ready within 120 s")
                time.sleep(0.002)
            ready = time.perf_counter() - t0
            return ready, first_byte(port, model)
        finally:
            p.kill()
            p.wait(10)


def bench_backend(label: str, root: Path, reps: int, fig: Figures, binaries: dict | None, spec: dict) -> None:
    h = DaemonHarness(root, binaries=binaries, ports=None)
    names = [f"c{i:02d}" for i in range(reps)]
    for n in names:
        h.write(n, model_manifest(n, activation="on-demand", **spec))
    try:
        base = h.start_router()
        port = int(base.rsplit(":", 1)[1])
        h.wait(lambda: all(h.record(n).get("state") == "Idle" for n in names), 60, poll=0.05, what="all Idle")
        rendered = render(h, names[0])
        dport = free_port_block(1, lo=h.ports[1] + 1)  # never one of the ports the daemon may assign
        direct(rendered, root, names[0], dport)  # untimed: the binary and the model file into the page cache
        d_ready, d_ttfb, ours = [], [], []
        for i, n in enumerate(names):
            for which in (("direct", "ours") if i % 2 == 0 else ("ours", "direct")):  # alternate the order
                time.sleep(0.3)
                if which == "direct":
                    r, t = direct(rendered, root, names[0], dport)
                    d_ready.append(r * 1000)
                    d_ttfb.append(t * 1000)
                else:
                    ours.append(first_byte(port, n) * 1000)
        d_total = [a + b for a, b in zip(d_ready, d_ttfb)]
        fig.add(f"{label}: backend start -> Ready, direct (median of {reps})", statistics.median(d_ready),
                columns=("direct",))
        fig.add(f"{label}: + first request TTFB, direct", statistics.median(d_ttfb), columns=("direct",))
        fig.add(f"{label}: cold request -> first byte: ours | direct start + TTFB",
                statistics.median(ours), statistics.median(d_total))
        fig.add(f"{label}: overhead ours - direct (median of per-rep differences)",
                statistics.median(o - d for o, d in zip(ours, d_total)), ratio=False, columns=("overhead",))
    finally:
        h.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--llama-server")
    ap.add_argument("--quick", action="store_true", help="CI smoke test: 2 repetitions")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.reps = 2
    args.reps = min(args.reps, 20)  # one port block of 20
    llama = find_llama_server(args.llama_server)
    print(environment(llama_server=llama), flush=True)
    fig = Figures(("ours", "direct"))
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as d:
        bench_backend("fake backend (load 0.3 s)", Path(d) / "fake", args.reps, fig, None,
                      {"env": {"FAKE_MODE": "load=0.3"}})
        if llama is None:
            print("  llama-server skipped: none found (pip install -e '.[cpu]')", flush=True)
        else:
            from xgen_declare.tools.tinygguf import write_tiny_gguf

            gguf = write_tiny_gguf(Path(d) / "tiny.gguf")
            bench_backend("llama-server tiny GGUF", Path(d) / "llama", args.reps, fig,
                          {"llama-server-cpu": llama}, {"model_path": str(gguf), "ctx_size": 512})
    fig.dump(args.json)


if __name__ == "__main__":
    main()
