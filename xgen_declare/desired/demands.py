"""Gather the ledger's inputs: read GGUF headers / config.json and turn resolved models into `Demand`s.

This is the I/O half of placement (files only, never a process); `ledger.build_ledger` is the pure
half. Bad input never raises: a model whose file cannot be read gets a warning ("placement unknown")
and the plan falls back to the manifest's explicit values. What a GGUF file gave (its facts, or why it
cannot be used) is cached by the file's identity, so a bad file costs one parse, not one per pass.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping

from xgen_declare.backends.profile import LLAMA, VLLM, profile
from xgen_declare.processes.settings import Placed
from xgen_declare.inventory.model import Inventory
from xgen_declare.backends.modelpath import gguf_repo, is_gguf_path
from xgen_declare.desired.resolve import Resolved
from xgen_declare.placement.buffers import total_bytes
from xgen_declare.placement.gguf_facts import GgufError, GgufFacts, read_gguf_facts
from xgen_declare.placement.gguf_split import read_split_facts
from xgen_declare.placement.hub import NOT_READ, HubFacts
from xgen_declare.placement.layers import OUTPUT_FIRST, OUTPUT_LAST
from xgen_declare.placement.ledger import HOST, Demand, Device, gpu_key
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import require_supported
from xgen_declare.placement.vllm_checks import TP, Blocker, find_config, vllm_problems, weights_bytes

__all__ = ["devices_of", "demand_for", "facts_of", "previous_values", "previous_cpu_moe", "place", "HubLookup",
           "CPU_MOE_NOT_KNOWN", "not_fetched"]

HubLookup = Callable[[Any], "HubFacts | None"]  # a ModelDecl -> what the hub's metadata says of its source

# (path, st_dev, st_ino, st_size, st_mtime_ns) -> the facts, or the GgufError the file gave
_FACTS: dict[tuple[str, int, int, int, int], GgufFacts | GgufError] = {}
_FACTS_MAX = 64
log = logging.getLogger(__name__)
LLAMA_CPP_PYTHON_CTX = 2048  # llama-cpp-python's n_ctx default


def devices_of(inventory: Inventory, host_memory_mib: int | None = None) -> list[Device]:
    """The ledger's devices; `host_memory_mib` (placement.host_memory_mib) caps the host memory."""
    out = [Device(gpu_key(g.index), g.index, g.memory_total_mib, g.memory_free_mib, g.integrated, g.name)
           for g in inventory.gpus if not g.hidden]
    cpu = inventory.cpu
    total, free = cpu.memory_total_mib, cpu.memory_available_mib
    if host_memory_mib is not None:
        total = host_memory_mib if total is None else min(total, host_memory_mib)
        free = host_memory_mib if free is None else min(free, host_memory_mib)
    out.append(Device(HOST, None, total, free, False, "host memory"))
    return out


def facts_of(path: str) -> GgufFacts:
    """read_gguf_facts, checked for an architecture we model, cached by file identity (the daemon plans
    every few seconds); a file that cannot be used raises the same GgufError on every pass, read once."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise GgufError(path, f"cannot read: {exc.strerror or exc}") from None
    key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    found = _FACTS.get(key)
    if found is None:
        found = _read_facts(path)
        if len(_FACTS) >= _FACTS_MAX:
            _FACTS.clear()
        _FACTS[key] = found
    if isinstance(found, GgufError):
        raise type(found)(found.path, found.message)  # a fresh one: re-raising one object grows its traceback
    return found


class UnusableFile(GgufError):
    """The model file is there but is no usable GGUF (truncated, crafted, not GGUF, a FIFO): invalid input,
    unlike a file not there yet or an architecture placement does not model (README "Exit codes")."""


def _read_facts(path: str) -> GgufFacts | GgufError:
    try:
        facts = read_gguf_facts(path)
    except GgufError as exc:
        return UnusableFile(exc.path, exc.message)
    except Exception as exc:  # a bug in placement: this model's placement is unknown, the others go on
        log.debug("reading %s for placement failed", path, exc_info=True)
        return GgufError(path, f"cannot be read for placement ({type(exc).__name__}: {exc})")
    try:
        require_supported(facts)
        return read_split_facts(facts)  # a split GGUF's first part: with the tensors of the others
    except GgufError as exc:
        return exc


def demand_for(res: Resolved, inventory: Inventory, seen: Any = None, hub: HubLookup | None = None) -> Demand | None:
    """The model's Demand, or None when it is disabled or has no backend here. `seen`: the planner's
    Seen of it (running, state, placement values, buffers) when a record exists. `hub(decl)`: the hub's
    metadata of a hub source not in the store yet (None, or no `hub`: not read, e.g. `render`)."""
    spec, decl, backend = res.spec, res.decl, res.backend
    if not spec.enabled or backend is None:
        return None
    gpus = list(res.gpus)
    running = bool(seen is not None and seen.running)
    buffers = getattr(seen, "buffers", None) if running else None
    actual = total_bytes(buffers) if buffers else None
    remote = _hub_facts(res, hub)
    if res.engine == VLLM:
        return _vllm_demand(res, gpus, inventory, running, actual, remote)
    prof = profile(backend)
    d = Demand(decl.name, backend, LLAMA, gpus=gpus, running=running, actual=actual,
               n_gpu_layers=spec.n_gpu_layers, tensor_split=spec.tensor_split,
               rule=OUTPUT_LAST if prof.output_last else OUTPUT_FIRST,
               settings=_settings(decl, backend),
               n_cpu_moe=spec.n_cpu_moe if prof.llama_server else 0, cpu_moe_ok=prof.llama_server)
    if not gpus:
        d.n_gpu_layers, d.tensor_split = 0, []  # n_cpu_moe: auto is 0 without GPUs (choose), N is rendered as N
    path = res.model_path
    fallback = ("n_gpu_layers: auto is left to llama-server's --fit" if spec.n_gpu_layers == "auto"
                else "the manifest's explicit values are used")
    src = spec.source
    if d.n_cpu_moe == "auto" and not_fetched(spec):  # never guessed: decided from the header, hub's or file's
        fallback += f"; {CPU_MOE_NOT_KNOWN}"
    if src is not None and src.kind == "url" and spec.model_path == src.url:  # not fetched yet
        if remote is not None:  # its GGUF header read over HTTP (store/hubmeta.py)
            return _from_hub(d, remote, fallback, seen if running else None)
        d.warning = f"{src.url}: its size is unknown until it is fetched into the store; placement unknown, {fallback}"
        return d
    if remote is not None:
        return _from_hub(d, remote, fallback, seen if running else None)
    if gguf_repo(spec.model_path, spec.hf_file) is not None:
        until = "it is fetched into the store" if spec.source is not None else "llama-server downloads it"
        d.warning = (f"{spec.model_path} is a HuggingFace repository: its size is unknown until {until}; "
                     f"placement unknown, {fallback}")
        return d
    if not is_gguf_path(path):
        d.warning = f"{path} is not a .gguf file: placement unknown"
        return d
    try:
        d.facts = facts_of(path)
    except GgufError as exc:
        d.warning = f"placement unknown: {exc}; {fallback}"
        d.bad_file = isinstance(exc, UnusableFile)
        return d
    if running and seen is not None:
        d.previous = previous_values(getattr(seen, "placement", None), d.facts.block_count)
        d.previous_cpu_moe = previous_cpu_moe(getattr(seen, "placement", None), d.facts.block_count)
    return d


CPU_MOE_NOT_KNOWN = ("n_cpu_moe: auto is not known yet: it is chosen from the GGUF header once the hub's metadata is "
                     "read or the file is fetched, before the model starts")


def not_fetched(spec: Any) -> bool:
    """A hub or URL source whose files are not in the store yet: its model_path is still what the source
    says (desired/build.on_local_path replaces it with the local path once fetched)."""
    src = spec.source
    return src is not None and src.is_remote and spec.model_path == src.model_path()


def _hub_facts(res: Resolved, hub: HubLookup | None) -> HubFacts | None:
    """What the hub says of the model's source when its files are not in the store (its model_path is still
    what the source says: desired/build.on_local_path replaces it once fetched); None for anything else, and
    without `hub` (render, validate: no lookup, the warnings say the size is unknown until fetched)."""
    src = res.spec.source
    if hub is None or src is None or src.kind not in ("hf", "url") or res.spec.model_path != src.model_path():
        return None
    found = hub(res.decl)
    return found if found is not None else HubFacts(src.text, reason=NOT_READ)


def _from_hub(d: Demand, remote: HubFacts, fallback: str, seen: Any) -> Demand:
    """A GGUF not fetched yet, placed from its header as the hub serves it (the same figures as the file)."""
    if remote.reason is not None or remote.facts is None:
        d.warning = f"placement unknown ({remote.reason or NOT_READ}): {remote.source}; {fallback}"
        return d
    try:
        require_supported(remote.facts)
    except GgufError as exc:
        d.warning = f"placement unknown: {exc}; {fallback}"
        return d
    d.facts, d.basis = remote.facts, remote.basis()
    if seen is not None:
        d.previous = previous_values(getattr(seen, "placement", None), d.facts.block_count)
        d.previous_cpu_moe = previous_cpu_moe(getattr(seen, "placement", None), d.facts.block_count)
    return d


def _settings(decl: Any, backend: str) -> ContextSettings:
    spec = decl.spec
    if profile(backend).python_module:
        ctx = LLAMA_CPP_PYTHON_CTX if spec.ctx_size is None else spec.ctx_size
        fa = spec.flash_attn if spec.flash_attn != "auto" else "off"
        return ContextSettings(ctx_size=ctx, parallel=1, flash_attn=fa)
    return ContextSettings(ctx_size=spec.ctx_size, parallel=spec.parallel, cache_type_k=spec.cache_type_k,
                           cache_type_v=spec.cache_type_v, flash_attn=spec.flash_attn,
                           swa_full="--swa-full" in (spec.extra_args or []))


def _vllm_demand(res: Resolved, gpus: list[int], inventory: Inventory, running: bool,
                 actual: dict[str, int] | None, remote: HubFacts | None = None) -> Demand:
    decl, spec, backend = res.decl, res.spec, res.backend
    tp, pp = spec.tensor_parallel_size, spec.pipeline_parallel_size
    d = Demand(decl.name, backend, VLLM, gpus=gpus[:tp * pp] if gpus else [], running=running, actual=actual,
               gpu_memory_utilization=spec.gpu_memory_utilization)
    if remote is not None:  # not in the store yet: config.json and the weights' sizes as the hub lists them
        cfg, weights = remote.config, remote.weights
        d.warning = None if cfg is not None else \
            f"placement unknown ({remote.reason or NOT_READ}): {remote.source}: vLLM pre-checks skipped"
        d.basis = remote.basis() if cfg is not None else None
    else:
        cfg, model_dir, d.warning = find_config(res.model_path)
        weights = weights_bytes(model_dir) if cfg is not None else None
    if cfg is not None:
        totals = [g.memory_total_mib if (g := inventory.gpu(i)) else None for i in gpus]
        d.problems = vllm_problems(cfg, tp=tp, pp=pp, gpus=gpus, totals_mib=totals,
                                   gmu=spec.gpu_memory_utilization, max_model_len=spec.max_model_len,
                                   weights=weights)
    elif gpus and tp * pp > len(gpus):
        d.problems = [Blocker(f"tensor_parallel_size x pipeline_parallel_size = {tp * pp} needs {tp * pp} GPUs "
                              f"but {len(gpus)} are available to this model", TP)]
    return d


def previous_values(placed: Placed | None, n_layer: int) -> tuple[int, list[float]] | None:
    """n_gpu_layers / tensor_split a running llama.cpp process was started with, from its state record
    (Resolved.placement_values, stored at spawn): None when not recorded or left to llama.cpp (`auto`)."""
    if placed is None or placed.layers is None:
        return None  # not recorded, or "auto": llama.cpp chose (--fit)
    ngl = placed.layers
    return (n_layer + 1 if ngl < 0 else min(ngl, n_layer + 1)), placed.split


def previous_cpu_moe(placed: Placed | None, block_count: int = 0) -> int | None:
    """The --n-cpu-moe a running process was started with (recorded when not 0; "all": every block, i.e.
    `block_count`); None when not recorded."""
    if placed is None:
        return None
    n = placed.n_cpu_moe
    if n == "all":
        return block_count
    if n is None:  # recorded without it: started with none
        return 0
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None


def demands(models: list[Resolved], inventory: Inventory, seen: Mapping[str, Any] | None = None,
            hub: HubLookup | None = None) -> list[Demand]:
    seen = seen or {}
    out = []
    for res in models:
        try:
            d = demand_for(res, inventory, seen.get(res.name), hub)
        except Exception as exc:  # a bug in placement: this model's placement is unknown, the others go on
            log.debug("placement of %s failed", res.name, exc_info=True)
            d = _unknown(res, f"placement unknown: {type(exc).__name__}: {exc}")
        if d is not None:
            out.append(d)
    return out


def _unknown(res: Resolved, warning: str) -> Demand | None:
    """A model whose demand could not be gathered: no facts, the manifest's own values, a warning."""
    spec = res.spec
    if not spec.enabled or res.backend is None:
        return None
    if res.engine == VLLM:
        return Demand(res.name, res.backend, VLLM, warning=warning)
    return Demand(res.name, res.backend, LLAMA, gpus=list(res.gpus), n_gpu_layers=spec.n_gpu_layers,
                  tensor_split=spec.tensor_split, warning=warning)


def place(models: list[Resolved], inventory: Inventory, margin_mib: int, seen: Mapping[str, Any] | None = None,
          changing: frozenset[str] | set[str] = frozenset(), host_memory_mib: int | None = None,
          hub: HubLookup | None = None):
    """The ledger for these models on this host (`seen`: name -> the planner's Seen; `changing`: running
    models whose process will be replaced, so their measured buffers no longer apply; `hub`: the hub's
    metadata of sources not in the store yet, see demand_for)."""
    from xgen_declare.placement.ledger import build_ledger

    seen = seen or {}
    wanted = demands(models, inventory, seen, hub)
    for d in wanted:
        d.changing = d.name in changing
    names = {d.name for d in wanted}
    freed: dict[str, int] = {}
    for name, s in seen.items():
        buffers = getattr(s, "buffers", None)
        if name in names or not s.running or not buffers:
            continue
        for key, amount in total_bytes(buffers).items():
            freed[key] = freed.get(key, 0) + amount
    return build_ledger(devices_of(inventory, host_memory_mib), wanted, margin_mib, freed,
                        enforce_host=host_memory_mib is not None)
