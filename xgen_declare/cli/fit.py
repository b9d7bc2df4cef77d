"""`xgen-declare fit MODEL.gguf`: per-GPU memory prediction and the chosen n_gpu_layers / tensor_split.

Exit codes: 0 the prediction fits; 1 bad input (not GGUF, truncated, unknown architecture); 3 an
explicit n_gpu_layers/tensor_split that does not fit the usable memory.
"""

from __future__ import annotations

import click

from xgen_declare.errors import ExitCode, ProblemsError
from xgen_declare.inventory.model import Inventory
from xgen_declare.desired.fit_params import cross_check as run_cross_check
from xgen_declare.placement.choose import DEFAULT_MARGIN_MIB, GpuBudget, choose, fits, usable_bytes
from xgen_declare.placement.gguf_facts import read_gguf_facts
from xgen_declare.placement.gguf_split import read_split_facts
from xgen_declare.placement.layers import OUTPUT_FIRST, OUTPUT_LAST
from xgen_declare.placement.memory import CACHE_TYPES, ContextSettings
from xgen_declare.placement.predict import MIB, DevicePart, Prediction
from xgen_declare.cli.common import PATHS, get_globals, global_options, output_option, print_json, table
from xgen_declare.cli.hostctx import host_inventory, inventory_option_help


def _ngl(value: str) -> int | str:
    if value in ("auto", "all"):
        return value
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter('use auto, all, -1 or a layer count') from None
    if n < -1:
        raise click.BadParameter('use auto, all, -1 or a layer count')
    return n


def _cpu_moe(value: str) -> int | str:
    if value in ("auto", "all"):
        return value
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("use auto, all or a layer count (0: every expert where its layer is)") from None
    if n < 0:
        raise click.BadParameter("use auto, all or a layer count (0: every expert where its layer is)")
    return n


def _split(value: str) -> list[float] | str:
    if value == "auto":
        return value
    try:
        parts = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter("use auto or comma-separated proportions, e.g. 3,1") from None
    if any(p < 0 for p in parts) or not any(p > 0 for p in parts):
        raise click.BadParameter("proportions must be >= 0 with at least one > 0")
    return parts


def _gpus(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter("use host GPU indices, e.g. 0,1") from None


@click.command(short_help="Predict GPU memory of a GGUF model and choose n_gpu_layers / tensor_split")
@click.argument("model", metavar="MODEL.gguf", type=PATHS)
@click.option("--ctx-size", type=click.IntRange(min=0), default=None, help="Context size (default/0: the model's own)")
@click.option("--gpus", "gpus_text", metavar="0,1", help="Host GPU indices (default: every visible GPU)")
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="llama-server slots (default: auto, 4 unified)")
@click.option("--cache-type-k", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("--cache-type-v", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("--flash-attn", type=click.Choice(("on", "off", "auto")), default="auto", show_default=True)
@click.option("--ubatch-size", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--swa-full", is_flag=True, help="llama-server --swa-full: sliding-window layers keep every cell")
@click.option("--n-gpu-layers", "ngl_text", default="auto", show_default=True, help="auto, all, -1 or a count")
@click.option("--tensor-split", "split_text", default="auto", show_default=True, help="auto or proportions, e.g. 3,1")
@click.option("--n-cpu-moe", "cpu_moe_text", default="0", show_default=True,
              help="llama-server --n-cpu-moe: keep the expert weights of the first N layers in host memory; "
                   "auto = the fewest that let every layer fit the GPU(s); all = every layer's (--cpu-moe)")
@click.option("--margin-mib", type=click.IntRange(min=0), default=DEFAULT_MARGIN_MIB, show_default=True,
              help="Memory kept free on each GPU")
@click.option("--offload-order", type=click.Choice(("output-first", "output-last")), default="output-first",
              show_default=True, help="llama.cpp's rule: output layer offloaded first (builds since Dec 2025) or last")
@click.option("--inventory", "inventory_file", metavar="FILE", help=inventory_option_help)
@click.option("--cross-check", is_flag=True, help="Also ask llama.cpp's own llama-fit-params (this host only)")
@output_option(("table", "json"), "table")
@global_options
def command(model: str, ctx_size: int | None, gpus_text: str | None, parallel: int | None, cache_type_k: str,
            cache_type_v: str, flash_attn: str, ubatch_size: int, swa_full: bool, ngl_text: str, split_text: str,
            cpu_moe_text: str, margin_mib: int,
            offload_order: str, inventory_file: str | None, cross_check: bool, output: str) -> int:
    """Read MODEL.gguf's header and tensor table (never its weights), predict what llama-server puts on
    each GPU and on the host, and choose the largest n_gpu_layers (and tensor_split over several GPUs)
    that fits each GPU's usable memory (free memory minus --margin-mib). MiB = 2^20 bytes.
    """
    ngl, split, gpu_list, cpu_moe = _ngl(ngl_text), _split(split_text), _gpus(gpus_text), _cpu_moe(cpu_moe_text)
    facts = read_split_facts(read_gguf_facts(model))  # a split GGUF's first part: with every part's weights
    settings = ContextSettings(ctx_size=ctx_size, parallel=parallel, cache_type_k=cache_type_k,
                               cache_type_v=cache_type_v, flash_attn=flash_attn, n_ubatch=ubatch_size,
                               swa_full=swa_full)
    inventory = _inventory(inventory_file)
    budgets = _budgets(inventory, gpu_list, margin_mib)
    if isinstance(split, list) and len(split) != len(budgets):
        raise click.BadParameter(f"has {len(split)} entries for {len(budgets)} GPU(s)", param_hint="--tensor-split")
    rule = OUTPUT_FIRST if offload_order == "output-first" else OUTPUT_LAST
    pred = choose(facts, settings, budgets, ngl, split, rule, n_cpu_moe=cpu_moe)
    ok = fits(pred, budgets) if budgets else True
    data = to_json(pred, facts, settings, budgets, inventory, margin_mib, ok)
    if cross_check:
        if inventory_file:
            raise click.UsageError("--cross-check runs llama-fit-params against this host's devices; "
                                   "it cannot be combined with --inventory")
        data["cross_check"] = run_cross_check(model, ctx_size, margin_mib, inventory).to_json()
    if output == "json":
        print_json(data)
    else:
        click.echo(render_table(data))
        if cross_check:
            cc = data["cross_check"]
            click.echo(f"llama-fit-params: {cc['error']}" if cc["error"] else
                       f"llama-fit-params ({cc['tool']}): {' '.join(cc['args'])}  "
                       f"[ours: -ngl {data['n_gpu_layers']}]")
    return ExitCode.OK if ok else ExitCode.NOT_CONVERGED  # computed; the model does not fit


def _inventory(inventory_file: str | None) -> Inventory:
    g = get_globals()
    try:
        config = g.load_config()
    except ProblemsError:
        config = None
    return host_inventory(g, config, inventory_file)  # type: ignore[arg-type]


def _budgets(inv: Inventory, gpu_list: list[int] | None, margin_mib: int) -> list[GpuBudget]:
    if gpu_list is None:
        chosen = [g for g in inv.gpus if not g.hidden]
    else:
        chosen = []
        for i in gpu_list:
            g = inv.gpu(i)
            if g is None:
                known = ", ".join(str(x.index) for x in inv.gpus) or "none"
                raise click.BadParameter(f"GPU {i} is not in the inventory (GPUs: {known})", param_hint="--gpus")
            chosen.append(g)
    return [GpuBudget(g.index, usable_bytes(g.memory_total_mib, g.memory_free_mib, margin_mib=margin_mib),
                      g.integrated, g.memory_free_mib) for g in chosen]


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / MIB, 2)


def _part_json(p: DevicePart) -> dict:
    return {"layers": p.layers, "weights_mib": _mib(p.weights), "kv_cache_mib": _mib(p.kv_cache),
            "recurrent_state_mib": _mib(p.recurrent), "compute_mib": _mib(p.compute), "total_mib": _mib(p.total), "usable_mib": _mib(p.usable)}


def to_json(pred: Prediction, facts, settings: ContextSettings, budgets: list[GpuBudget], inv: Inventory,
            margin_mib: int, ok: bool) -> dict:
    integrated = {b.index: b.integrated for b in budgets}
    per_gpu = [{"gpu": p.gpu, **_part_json(p), "integrated": integrated[p.gpu], "output_layer": p.has_output,
                "fits": p.fits} for p in pred.gpus]
    cpu = _part_json(pred.cpu)
    cpu["output_buffer_mib"] = _mib(pred.cpu.other)
    avail = inv.cpu.memory_available_mib
    cpu["usable_mib"] = None if avail is None else float(max(avail - margin_mib, 0))
    return {
        "model": facts.path, "architecture": facts.architecture, "n_layer": facts.block_count,
        "file_size_mib": _mib(facts.file_size), "kv_cells": pred.kv_cells, "parallel": settings.parallel,
        "cache_type_k": settings.cache_type_k, "cache_type_v": settings.cache_type_v,
        "flash_attn": settings.flash_attn, "n_ubatch": settings.n_ubatch,
        "n_gpu_layers": pred.n_gpu_layers, "tensor_split": [_num(x) for x in pred.tensor_split],
        "n_cpu_moe": pred.n_cpu_moe, "cpu_moe_mib": _mib(pred.cpu_moe_bytes),
        "weights_mib": _mib(pred.weights), "kv_cache_mib": _mib(pred.kv_cache),
        "recurrent_state_mib": _mib(pred.recurrent), "compute_mib": _mib(pred.compute),
        "total_mib": _mib(pred.weights + pred.kv_cache + pred.recurrent + pred.compute + pred.cpu.other),
        "per_gpu": per_gpu, "cpu": cpu, "margin_mib": margin_mib, "fits": ok, "notes": pred.notes,
    }


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def render_table(d: dict) -> str:
    head = (f"{d['model']}: {d['architecture']}, {d['n_layer']} layers, {d['file_size_mib']:.0f} MiB file; "
            f"ctx {d['kv_cells']} cells, KV {d['cache_type_k']}/{d['cache_type_v']}, flash-attn {d['flash_attn']}")
    split = ",".join(str(x) for x in d["tensor_split"]) or "-"
    chosen = f"n_gpu_layers: {d['n_gpu_layers']}/{d['n_layer'] + 1}   tensor_split: {split}"
    if d["n_cpu_moe"]:
        chosen += f"   n_cpu_moe: {d['n_cpu_moe']} ({d['cpu_moe_mib']:.0f} MiB of expert weights in host memory)"
    rs = bool(d["recurrent_state_mib"])  # a hybrid model: its recurrent state gets a column of its own
    rows = [[f"GPU{p['gpu']}" + (" (iGPU)" if p["integrated"] else ""), p["layers"], p["weights_mib"],
             p["kv_cache_mib"], *([p["recurrent_state_mib"]] if rs else []), p["compute_mib"], p["total_mib"],
             p["usable_mib"], {True: "yes", False: "NO", None: "?"}[p["fits"]]] for p in d["per_gpu"]]
    c = d["cpu"]
    rows.append(["CPU", c["layers"], c["weights_mib"], c["kv_cache_mib"], *([c["recurrent_state_mib"]] if rs else []),
                 c["compute_mib"], c["total_mib"], c["usable_mib"], ""])
    rows.append(["total", "", d["weights_mib"], d["kv_cache_mib"], *([d["recurrent_state_mib"]] if rs else []),
                 d["compute_mib"], d["total_mib"], "", ""])
    body = table(rows, ["device", "layers", "weights MiB", "KV MiB", *(["recurrent MiB"] if rs else []),
                        "compute MiB", "total MiB", "usable MiB", "fits"])
    notes = "".join(f"\nnote: {n}" for n in d["notes"])
    return f"{head}\n{chosen}\n{body}{notes}"

