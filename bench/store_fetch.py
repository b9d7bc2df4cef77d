"""The model store against huggingface_hub's own `hf download`, both fetching the same file from the fake hub
(xgen_declare/testing/fakehub.py) on loopback, in turn, in the same run (issue 23's figures):

  (a) download throughput: `xgen_declare.store.fetch` vs `hf download` (each a fresh process, a fresh store)
  (b) resume after a cut at 90 %: the fetching process is killed (SIGKILL) once 90 % is reported; the next
      fetch resumes. Figure: the share of the file not fetched again (ours vs `hf download`, which keeps
      no partial file across processes and fetches it whole again).

    .venv/bin/python bench/store_fetch.py [--mib 512] [--rounds 3] [--quick] [--json FILE]

huggingface_hub writes in 10 MiB chunks: a cut loses what arrived since the last whole chunk, so the saved
share grows with the file (at 512 MiB: >= 97 %; the --quick 64 MiB file: ~78 %).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xgen_declare.testing.benchkit import Figures, environment  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="64 MiB, 1 round")
    ap.add_argument("--json")
    args = ap.parse_args()
    mib, rounds = (64, 1) if args.quick else (args.mib, args.rounds)
    import huggingface_hub
    print(environment(huggingface_hub=huggingface_hub.__version__), flush=True)
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
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures.dump(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
