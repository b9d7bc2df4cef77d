"""`n_gpu_layers: auto` / `tensor_split: auto`: the most layers (and a split) that fit. Pure.

Usable memory of a GPU for one model (`usable_bytes`):
    min(free now, total - sum of what *our* running models use) - margin,
with the model being restarted added back to both (its memory comes free when it stops). Live free
memory already excludes every running process, so ours are not subtracted from it a second time;
the `total - ours` term only matters when free memory is unknown or stale.

An integrated GPU (Gpu.integrated: Strix Halo, APUs) draws from the same pool as the host, so its
share and the host's share of the model must fit that pool together.
"""

from __future__ import annotations

from dataclasses import dataclass

from xgen_declare.placement.gguf_facts import GgufFacts
from xgen_declare.placement.layers import OUTPUT_FIRST, Rule
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import MIB, Prediction, expert_bytes_per_layer, predict

__all__ = ["GpuBudget", "usable_bytes", "fits", "choose", "DEFAULT_MARGIN_MIB"]

DEFAULT_MARGIN_MIB = 1024  # like llama.cpp's --fit-target default


@dataclass(frozen=True)
class GpuBudget:
    index: int  # host GPU index
    usable: int | None  # bytes this model may use; None = unknown
    integrated: bool = False
    free_mib: int | None = None  # for llama.cpp's default split (proportional to free memory)


def usable_bytes(total_mib: int | None, free_mib: int | None, ours_running_mib: int = 0,
                 restarting_mib: int = 0, margin_mib: int = DEFAULT_MARGIN_MIB) -> int | None:
    candidates = []
    if free_mib is not None:
        candidates.append(free_mib + restarting_mib)
    if total_mib is not None:
        candidates.append(total_mib - ours_running_mib + restarting_mib)
    if not candidates:
        return None
    return max(min(candidates) - margin_mib, 0) * MIB


def fits(pred: Prediction, budgets: list[GpuBudget]) -> bool:
    """Every discrete GPU within its usable memory; integrated GPUs and the host within their pool."""
    by_index = {b.index: b for b in budgets}
    pool_use = pred.cpu.total
    pool: int | None = None
    for part in pred.gpus:
        b = by_index[part.gpu]
        if b.integrated:
            pool_use += part.total
            pool = b.usable if pool is None or b.usable is None else min(pool, b.usable)
            continue
        if b.usable is None or part.total > b.usable:
            return False
    return pool is None or pool_use <= pool


def choose(facts: GgufFacts, settings: ContextSettings, budgets: list[GpuBudget],
           n_gpu_layers: int | str = "auto", tensor_split: list[float] | str | None = "auto",
           rule: Rule = OUTPUT_FIRST, n_cpu_moe: int | str = 0) -> Prediction:
    """Resolve the `auto` values: the largest layer count that fits (and, with `tensor_split: auto`
    over several GPUs, a split that fits it). Explicit values are kept and only predicted; the
    returned prediction's `.gpus[i].usable` carry the budgets. When nothing fits, 0 layers.

    `n_cpu_moe`: N keeps the expert weights of layers 0..N-1 in host memory (llama-server
    `--n-cpu-moe N`); `auto` picks the smallest N with which every layer fits the GPU(s), and when even
    every layer's experts on the host is not enough, keeps them all there and offloads fewer layers; `all`
    (llama-server `--cpu-moe`) is N = the block count."""
    if n_cpu_moe == "all":
        n_cpu_moe = facts.block_count
    if n_cpu_moe == "auto":
        return _choose_cpu_moe(facts, settings, budgets, n_gpu_layers, tensor_split, rule)
    return _choose(facts, settings, budgets, n_gpu_layers, tensor_split, rule, int(n_cpu_moe))


def _choose_cpu_moe(facts, settings, budgets, n_gpu_layers, tensor_split, rule) -> Prediction:
    n_layer = facts.block_count
    if not budgets or not any(expert_bytes_per_layer(facts)):
        return _choose(facts, settings, budgets, n_gpu_layers, tensor_split, rule, 0)
    ngl = "all" if n_gpu_layers == "auto" else n_gpu_layers
    lo, hi = 0, n_layer  # fits(hi) is what is searched for; fewer experts on the GPU never fit worse
    if not fits(_choose(facts, settings, budgets, ngl, tensor_split, rule, n_layer), budgets):
        return _choose(facts, settings, budgets, n_gpu_layers, tensor_split, rule, n_layer)
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(_choose(facts, settings, budgets, ngl, tensor_split, rule, mid), budgets):
            hi = mid
        else:
            lo = mid + 1
    return _choose(facts, settings, budgets, ngl, tensor_split, rule, lo)


def _choose(facts: GgufFacts, settings: ContextSettings, budgets: list[GpuBudget], n_gpu_layers: int | str,
            tensor_split: list[float] | str | None, rule: Rule, n_cpu_moe: int) -> Prediction:
    gpus = [b.index for b in budgets]
    free = [b.free_mib for b in budgets]
    auto_split = tensor_split == "auto" and len(budgets) > 1
    fixed_split = [] if tensor_split in ("auto", None) else list(tensor_split)  # type: ignore[arg-type]
    if n_gpu_layers != "auto":
        split = fixed_split
        if auto_split:
            split = _fitting_split(facts, settings, budgets, _ngl(n_gpu_layers, facts), rule, n_cpu_moe) or []
        return _with_budgets(predict(facts, settings, gpus, n_gpu_layers, split, rule, free, n_cpu_moe), budgets)
    if not gpus:
        return predict(facts, settings, [], 0)
    for ngl in range(facts.block_count + 1, 0, -1):
        if auto_split:
            split = _fitting_split(facts, settings, budgets, ngl, rule, n_cpu_moe)
            if split is not None:
                return _with_budgets(predict(facts, settings, gpus, ngl, split, rule, free, n_cpu_moe), budgets)
            continue
        pred = predict(facts, settings, gpus, ngl, fixed_split, rule, free, n_cpu_moe)
        if fits(pred, budgets):
            return _with_budgets(pred, budgets)
    pred = predict(facts, settings, gpus, 0, fixed_split, rule, free, n_cpu_moe)
    pred.notes.append("not even one layer fits the usable memory: 0 layers offloaded")
    return _with_budgets(pred, budgets)


def _ngl(value: int | str, facts: GgufFacts) -> int:
    return facts.block_count + 1 if value in (-1, "all") else int(value)


def _fitting_split(facts: GgufFacts, settings: ContextSettings, budgets: list[GpuBudget], ngl: int,
                   rule: Rule, n_cpu_moe: int = 0) -> list[float] | None:
    """A split of `ngl` offloaded layers that fits: first proportional to usable memory (balanced),
    then greedy (fill each GPU in order, the rest on the last). Splits are layer counts, which the
    llama.cpp rule turns back into exactly those counts."""
    gpus = [b.index for b in budgets]
    if ngl == 0:
        return [1.0] * len(gpus)
    usable = [b.usable or 0 for b in budgets]
    if sum(usable) > 0:
        pred = predict(facts, settings, gpus, ngl, [float(u) for u in usable], rule, n_cpu_moe=n_cpu_moe)
        if fits(pred, budgets):
            return [float(p.layers) for p in pred.gpus]
    counts = _greedy_counts(facts, settings, budgets, ngl, rule, n_cpu_moe)
    if counts is None:
        return None
    split = [float(c) for c in counts]
    pred = predict(facts, settings, gpus, ngl, split, rule, n_cpu_moe=n_cpu_moe)
    return split if fits(pred, budgets) and [p.layers for p in pred.gpus] == counts else None


def _greedy_counts(facts: GgufFacts, settings: ContextSettings, budgets: list[GpuBudget], ngl: int,
                   rule: Rule, n_cpu_moe: int = 0) -> list[int] | None:
    n = len(budgets)
    counts = [0] * n
    remaining = ngl
    for i in range(n - 1):
        lo, hi = 0, remaining  # the most layers GPU i can hold with the rest on the GPUs after it
        while lo < hi:
            mid = (lo + hi + 1) // 2
            trial = counts[:i] + [mid] + [0] * (n - i - 1)
            trial[-1] += remaining - mid
            if _part_fits(facts, settings, budgets, ngl, trial, i, rule, n_cpu_moe):
                lo = mid
            else:
                hi = mid - 1
        counts[i] = lo
        remaining -= lo
    counts[-1] = remaining
    return counts if any(counts) else None


def _part_fits(facts, settings, budgets, ngl, counts, i, rule, n_cpu_moe=0) -> bool:
    if counts[i] == 0:
        return True
    split = [float(c) if c else 0.0 for c in counts]
    if not any(split):
        return False
    pred = predict(facts, settings, [b.index for b in budgets], ngl, split, rule, n_cpu_moe=n_cpu_moe)
    b = budgets[i]
    return b.usable is not None and (b.integrated or pred.gpus[i].total <= b.usable)


def _with_budgets(pred: Prediction, budgets: list[GpuBudget]) -> Prediction:
    by_index = {b.index: b for b in budgets}
    for part in pred.gpus:
        part.usable = by_index[part.gpu].usable
    return pred

