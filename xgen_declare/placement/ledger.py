"""The memory ledger across every model of a host: per device, what each model uses. Pure.

Inputs are `Device`s (GPUs and the host, from the inventory) and one `Demand` per enabled model (read
beforehand by `desired/demands.py`). `build_ledger` admits the models one by one and returns a `Ledger`:

* **capacity** of a device for *our* models = min(free now + R, total) - margin, where R is what our
  running models use now (measured buffers, else their prediction). Live free memory already excludes
  them, and the ledger counts every model of ours again (running ones included), so R is added back
  once — never subtracted twice. Memory of models being stopped is added back too (stops run first).
* **order**: running models first (they hold their memory now), then the others, each by name. A
  model that does not fit what is left becomes blocked with the collision and a suggestion; the others
  still go on.
* **llama.cpp family**: `choose()` resolves `n_gpu_layers: auto` / `tensor_split: auto` against what
  is left; a running model keeps the values it was started with while they still fit (no flapping).
  Explicit values are predicted and checked.
* **vLLM**: `gpu_memory_utilization x total` on each GPU of its set (the first tp x pp of `gpus`);
  the sum of `gpu_memory_utilization` of vLLM models sharing a GPU must stay <= 1.0; pre-check
  failures from config.json (`vllm_checks`) block too.
* **host memory** is listed (CPU-only backends count only there) and an overcommit is a note, not a
  block: llama.cpp maps weights from the page cache. An **integrated GPU** shares the host's memory:
  its row and the host's row are one pool, and that pool is checked (and blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xgen_declare.placement.choose import GpuBudget, choose, fits, usable_bytes
from xgen_declare.placement.gguf_facts import GgufError, GgufFacts
from xgen_declare.placement.layers import OUTPUT_FIRST, Rule
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import MIB, Prediction, design, predict

__all__ = ["Device", "Demand", "Entry", "Ledger", "build_ledger", "HOST", "gpu_key", "GIB"]

HOST = "host"
GIB = 1 << 30


def gpu_key(index: int) -> str:
    return f"GPU{index}"


@dataclass(frozen=True)
class Device:
    key: str  # "GPU0" ... or "host"
    gpu: int | None
    total_mib: int | None
    free_mib: int | None
    integrated: bool = False
    name: str = ""


@dataclass
class Demand:
    """What one model asks for, gathered before planning (files read, running state known)."""

    name: str
    backend: str
    engine: str  # "llama" (a GGUF through llama-server or llama-cpp-python) or "vllm" (backends/profile.py)
    gpus: list[int] = field(default_factory=list)  # host GPU indices it may use, in backend order
    running: bool = False  # a live process of it holds memory now
    changing: bool = False  # that process will be replaced: its measured use no longer applies
    actual: dict[str, int] | None = None  # device key -> bytes measured from the backend's log
    # llama.cpp family
    facts: GgufFacts | None = None
    settings: ContextSettings = field(default_factory=ContextSettings)
    n_gpu_layers: int | str = -1
    tensor_split: list[float] | str = field(default_factory=list)
    rule: Rule = OUTPUT_FIRST
    previous: tuple[int, list[float]] | None = None  # n_gpu_layers / tensor_split it was started with
    n_cpu_moe: int | str = 0  # llama-server --n-cpu-moe: N, "auto" (placement/choose.py) or "all" (--cpu-moe)
    cpu_moe_ok: bool = False  # its backend takes --n-cpu-moe (llama-server): the ledger may suggest it
    previous_cpu_moe: int | None = None  # the --n-cpu-moe it was started with (its state record)
    # vLLM
    gpu_memory_utilization: float = 0.0
    problems: list[str] = field(default_factory=list)  # failed pre-checks: each blocks the model
    warning: str | None = None  # placement unknown (unreadable GGUF, no config.json, ...)
    bad_file: bool = False  # the warning is about the model file itself: there, but no usable GGUF
    basis: str | None = None  # where the facts come from when not the model's files (the hub's metadata)

    @property
    def auto(self) -> bool:
        return self.n_gpu_layers == "auto" or self.tensor_split == "auto" or self.n_cpu_moe == "auto"

    def cpu_moe_asked(self) -> int | str:
        """The manifest's n_cpu_moe as placement counts it: "auto", or a layer count ("all": every layer)."""
        if self.n_cpu_moe == "all":
            return self.facts.block_count if self.facts is not None else 0
        return self.n_cpu_moe

    def cpu_moe_now(self) -> int:
        """The --n-cpu-moe a running process was started with: its record's, else the manifest's number."""
        if self.previous_cpu_moe is not None:
            return self.previous_cpu_moe
        asked = self.cpu_moe_asked()
        return asked if isinstance(asked, int) else 0


@dataclass
class Entry:
    name: str
    use: dict[str, int] = field(default_factory=dict)  # device key -> bytes
    source: str = "predicted"  # predicted | measured | reserved (vLLM) | unknown
    blocked: str | None = None
    blocked_field: str = "n_gpu_layers"  # the manifest field a blocked model's report points at
    n_gpu_layers: int | None = None  # resolved values to render (auto) or the explicit ones
    tensor_split: list[float] | None = None
    resolved: bool = False  # n_gpu_layers / tensor_split / n_cpu_moe were `auto` and are now numbers
    n_cpu_moe: int | None = None  # --n-cpu-moe to render (auto resolved) or the explicit one
    cpu_moe_bytes: int = 0  # expert weights that --n-cpu-moe keeps in host memory (counted in use["host"])
    detail: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> weights/kv/compute bytes
    gpu_memory_utilization: float | None = None  # vLLM


@dataclass
class Ledger:
    devices: list[Device] = field(default_factory=list)
    capacity: dict[str, int | None] = field(default_factory=dict)  # bytes our models may use
    entries: list[Entry] = field(default_factory=list)
    margin_mib: int = 1024
    notes: list[str] = field(default_factory=list)  # about the host (memory overcommit of the host)
    warnings: dict[str, str] = field(default_factory=dict)  # model -> why its placement is unknown
    bad_files: list[str] = field(default_factory=list)  # models whose file is there but no usable GGUF
    enforce_host: bool = False  # host memory is a budget (placement.host_memory_mib), not only a note

    def entry(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)

    @property
    def blocked(self) -> dict[str, str]:
        return {e.name: e.blocked for e in self.entries if e.blocked}

    def used(self, key: str) -> int:
        return sum(e.use.get(key, 0) for e in self.entries if not e.blocked)

    def shared(self) -> list[str]:
        """Keys of one memory pool: the host and every integrated GPU (when there is one)."""
        igpus = [d.key for d in self.devices if d.integrated]
        return [HOST] + igpus if igpus else []

    def pool_used(self, key: str) -> int:
        pool = self.shared()
        return sum(self.used(k) for k in pool) if key in pool else self.used(key)

    def remaining(self, key: str) -> int | None:
        """Bytes still free for our models on `key` (its whole pool when shared); None: unknown."""
        cap = self.capacity.get(key)
        return None if cap is None else max(cap - self.pool_used(key), 0)

    def format(self) -> str:
        """The ledger table; empty when no model's use is known (nothing to show)."""
        if not any(e.use for e in self.entries):
            return ""
        rows = [["DEVICE", "MODEL", "MiB", "SOURCE", ""]]
        for d in self.devices:
            here = [e for e in self.entries if e.use.get(d.key)]
            for e in sorted(here, key=lambda e: e.name):
                rows.append([d.key, e.name, f"{e.use[d.key] / MIB:.0f}", e.source, "(blocked)" if e.blocked else ""])
            if not here and d.key == HOST:
                continue
            cap = self.capacity.get(d.key)
            used = self.pool_used(d.key)
            total = f"{used / MIB:.0f}"
            limit = "?" if cap is None else f"{cap / MIB:.0f}"
            status = "" if cap is None or used <= cap else ("OVER (host memory)" if d.key == HOST else "OVERCOMMIT")
            pool = " pool" if d.key in self.shared() else ""
            of = f"of {d.total_mib}" if d.total_mib is not None else "total unknown"
            rows.append([d.key, f"= total{pool}", total, f"usable {limit} ({of}, margin {self.margin_mib})", status])
        for e in self.entries:
            if not e.use and e.source == "unknown":
                rows.append(["?", e.name, "?", "unknown", ""])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["memory ledger (MiB = 2^20 bytes):"]
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in
                                         enumerate(zip(r, widths))).rstrip())
        return "\n".join(lines)

    def to_json(self) -> dict:
        devices = []
        for d in self.devices if any(e.use for e in self.entries) else []:  # like format(): nothing known, none
            cap = self.capacity.get(d.key)
            used = self.pool_used(d.key)
            devices.append({
                "device": d.key, "gpu": d.gpu, "integrated": d.integrated, "total_mib": d.total_mib,
                "free_mib": d.free_mib, "usable_mib": _mib(cap), "used_mib": _mib(used),
                "shared_pool": d.key in self.shared(), "overcommitted": cap is not None and used > cap,
                "models": {e.name: _mib(e.use[d.key]) for e in self.entries if e.use.get(d.key) and not e.blocked},
            })
        models = [{"name": e.name, "source": e.source, "blocked": e.blocked, "n_gpu_layers": e.n_gpu_layers,
                   "tensor_split": e.tensor_split, "resolved": e.resolved, "n_cpu_moe": e.n_cpu_moe,
                   "cpu_moe_mib": _mib(e.cpu_moe_bytes),
                   "per_device_mib": {k: _mib(v) for k, v in e.use.items()}} for e in self.entries]
        return {"margin_mib": self.margin_mib, "devices": devices, "models": models, "notes": list(self.notes),
                "warnings": dict(self.warnings)}


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / MIB, 1)


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


# ---- building --------------------------------------------------------------------------------------

def build_ledger(devices: list[Device], demands: list[Demand], margin_mib: int = 1024,
                 freed: dict[str, int] | None = None, enforce_host: bool = False) -> Ledger:
    """`freed`: device key -> bytes used now by running models of ours that are not in `demands`
    (being stopped or disabled): added back like the running ones. `enforce_host`: a model whose host
    memory does not fit is blocked (without it, a host that is not a shared pool only gets a note: CPU
    weights are mapped from the page cache)."""
    ledger = Ledger(devices=list(devices), margin_mib=margin_mib, enforce_host=enforce_host)
    now = dict(freed or {})
    for d in demands:
        if d.running:
            for k, v in _current_use(d, devices).items():
                now[k] = now.get(k, 0) + v
    for dev in devices:
        r = -(-now.get(dev.key, 0) // MIB)
        ledger.capacity[dev.key] = usable_bytes(dev.total_mib, dev.free_mib, r, r, margin_mib)
    order = sorted(demands, key=lambda d: (not d.running, d.name))
    for d in order:
        entry = _admit_one(ledger, d)
        ledger.entries.append(entry)
        if d.warning:
            ledger.warnings[d.name] = d.warning
            if d.bad_file:
                ledger.bad_files.append(d.name)
        elif entry.source == "predicted" and d.facts is not None and (named := design(d.facts, d.settings)):
            ledger.notes.append(f"{d.name}: KV cache modelled as {named}")
        if d.basis and not d.warning:
            ledger.notes.append(f"{d.name}: {d.basis}")
        if entry.cpu_moe_bytes and not d.warning:
            ledger.notes.append(_cpu_moe_note(d, entry))
        if entry.blocked and d.running and d.actual:
            # its process keeps running (a blocked restart): what it holds stays used
            ledger.entries.append(Entry(f"{d.name} (running)", dict(d.actual), "measured"))
    host = ledger.capacity.get(HOST)
    if host is not None and not ledger.shared() and not enforce_host and ledger.used(HOST) > host:
        ledger.notes.append(f"host memory: models use {_gib(ledger.used(HOST))} of {_gib(host)} usable "
                            "(weights on the CPU are mapped from the page cache; not blocked)")
    ledger.entries.sort(key=lambda e: e.name)
    return ledger


def _admit_one(ledger: Ledger, d: Demand) -> Entry:
    """`_admit`; a model the prediction fails on (facts beyond what it models: a bug, not an input the
    reader let through on purpose) is 'placement unknown' with its explicit values, the others go on."""
    try:
        return _admit(ledger, d) if d.engine == "llama" else _admit_vllm(ledger, d)
    except Exception as exc:
        d.warning = f"placement unknown: {type(exc).__name__}: {exc}"
        d.facts = None
        ngl = d.n_gpu_layers if isinstance(d.n_gpu_layers, int) and d.engine == "llama" else None
        split = list(d.tensor_split) if isinstance(d.tensor_split, list) and d.engine == "llama" else None
        return Entry(d.name, {}, "unknown", n_gpu_layers=ngl, tensor_split=split)


def _current_use(d: Demand, devices: list[Device]) -> dict[str, int]:
    """What a running model holds now: measured buffers, else the prediction of its start values."""
    if d.actual:
        return dict(d.actual)
    if d.engine == "vllm":
        return _vllm_use(d, {dev.key: dev for dev in devices})
    if d.facts is None:
        return {}
    ngl, split = d.previous or (d.n_gpu_layers, d.tensor_split)
    if ngl == "auto" or split == "auto":
        return {}
    try:
        return _use(predict(d.facts, d.settings, d.gpus, ngl, list(split), d.rule, n_cpu_moe=d.cpu_moe_now()))
    except Exception:  # as _admit_one: what this model holds is unknown, the others go on
        return {}


def _budgets(ledger: Ledger, gpus: list[int]) -> list[GpuBudget]:
    by_key = {d.key: d for d in ledger.devices}
    out = []
    for g in gpus:
        dev = by_key.get(gpu_key(g))
        out.append(GpuBudget(g, ledger.remaining(gpu_key(g)), bool(dev and dev.integrated),
                             dev.free_mib if dev else None))
    return out


def _use(pred: Prediction) -> dict[str, int]:
    use = {gpu_key(p.gpu): p.total for p in pred.gpus if p.total}  # type: ignore[arg-type]
    if pred.cpu.total:
        use[HOST] = pred.cpu.total
    return use


def _detail(pred: Prediction) -> dict[str, dict[str, int]]:
    out = {gpu_key(p.gpu): {"weights": p.weights, "kv_cache": p.kv_cache + p.recurrent,  # type: ignore[arg-type]
                            "compute": p.compute} for p in pred.gpus if p.total}
    out[HOST] = {"weights": pred.cpu.weights, "kv_cache": pred.cpu.kv_cache + pred.cpu.recurrent,
                 "compute": pred.cpu.compute + pred.cpu.other}
    return out


def _admit(ledger: Ledger, d: Demand) -> Entry:
    explicit_ngl = None if d.n_gpu_layers == "auto" else d.n_gpu_layers
    explicit_split = None if d.tensor_split == "auto" else list(d.tensor_split)
    explicit_moe = d.cpu_moe_asked() if d.n_cpu_moe != "auto" else None
    if d.facts is None:
        return Entry(d.name, {}, "unknown", n_gpu_layers=explicit_ngl if isinstance(explicit_ngl, int) else None,
                     tensor_split=explicit_split, n_cpu_moe=explicit_moe)
    if d.running and not d.changing and d.actual:
        ngl, split = d.previous or (explicit_ngl, explicit_split)
        return Entry(d.name, dict(d.actual), "measured", n_gpu_layers=ngl if isinstance(ngl, int) else None,
                     tensor_split=split, resolved=d.auto, n_cpu_moe=d.cpu_moe_now())
    budgets = _budgets(ledger, d.gpus)
    pred = None
    if d.auto and d.previous is not None and d.running:
        # keep the started-with value of each `auto` field; an explicit one is what will be rendered
        ngl = d.previous[0] if d.n_gpu_layers == "auto" else d.n_gpu_layers
        split = d.previous[1] if d.tensor_split == "auto" else list(d.tensor_split)
        moe = d.cpu_moe_now() if d.n_cpu_moe == "auto" else int(d.cpu_moe_asked())
        keep = predict(d.facts, d.settings, d.gpus, ngl, split if len(d.gpus) > 1 else [], d.rule, n_cpu_moe=moe)
        if not budgets or fits(keep, budgets):
            pred = keep
    if pred is None:
        pred = choose(d.facts, d.settings, budgets, d.n_gpu_layers, d.tensor_split, d.rule,
                      n_cpu_moe=d.cpu_moe_asked())
    entry = Entry(d.name, _use(pred), "predicted", n_gpu_layers=pred.n_gpu_layers,
                  tensor_split=[float(x) for x in pred.tensor_split], resolved=d.auto, detail=_detail(pred),
                  n_cpu_moe=pred.n_cpu_moe if d.n_cpu_moe == "auto" else explicit_moe,
                  cpu_moe_bytes=pred.cpu_moe_bytes)
    if budgets and not fits(pred, budgets):
        entry.blocked = _llama_collision(ledger, d, pred, budgets)
    elif ledger.enforce_host and not ledger.shared():
        mine, left = entry.use.get(HOST, 0), ledger.remaining(HOST)
        if mine and left is not None and mine > left:
            entry.blocked = (_collision_text(ledger, d.name, mine, "of host memory", HOST)
                             + " (placement.host_memory_mib); stop another model or raise the limit")
    return entry


def _llama_collision(ledger: Ledger, d: Demand, pred: Prediction, budgets: list[GpuBudget]) -> str:
    by_gpu = {b.index: b for b in budgets}
    part = next((p for p in pred.gpus if p.fits is False or (by_gpu[p.gpu].usable is None and p.total)), None)
    if part is None:  # the shared pool of an integrated GPU and the host
        part = next(p for p in pred.gpus if by_gpu[p.gpu].integrated)
        key = gpu_key(part.gpu)  # type: ignore[arg-type]
        mine = part.total + pred.cpu.total
        where = f"in the memory {key} shares with the host"
    else:
        key = gpu_key(part.gpu)  # type: ignore[arg-type]
        mine, where = part.total, f"on {key}"
    text = _collision_text(ledger, d.name, mine, where, key)
    hints = []
    try:
        split = d.tensor_split if d.tensor_split == "auto" else list(d.tensor_split)
        best = choose(d.facts, d.settings, budgets, "auto", split, d.rule,  # type: ignore[arg-type]
                      n_cpu_moe=d.cpu_moe_asked())
        if best.n_gpu_layers > 0 and d.n_gpu_layers != "auto":
            hints.append(f"try n_gpu_layers ≤ {best.n_gpu_layers}")
        elif d.n_gpu_layers != "auto":
            hints.append("try n_gpu_layers: 0 (CPU only)")
        if d.n_cpu_moe not in ("auto", "all") and d.cpu_moe_ok:
            moe = choose(d.facts, d.settings, budgets, d.n_gpu_layers, split, d.rule,  # type: ignore[arg-type]
                         n_cpu_moe="auto")
            if moe.n_cpu_moe and fits(moe, budgets):
                hints.append(f"try n_cpu_moe: auto ({moe.n_cpu_moe} layers' expert weights in host memory)")
    except (GgufError, ValueError):
        pass
    move = _llama_move(ledger, d, pred.n_gpu_layers)
    if move is not None:
        hints.append(f"move {d.name} to GPU{move} (gpus: [{move}])")
    other = _move_other(ledger, key, mine, d.gpus)
    if other is not None:
        hints.append(other)
    return text + ("; " + " or ".join(hints) if hints else "")


def _cpu_moe_note(d: Demand, entry: Entry) -> str:
    """How much --n-cpu-moe put where: the expert weights kept in host memory, the weights on the GPU(s)."""
    n = entry.n_cpu_moe or 0
    gpu = {k: v["weights"] for k, v in entry.detail.items() if k != HOST and v.get("weights")}
    on_gpus = ", ".join(f"{v / MIB:.0f} MiB on {k}" for k, v in gpu.items()) or "none on a GPU"
    how = f" ({d.n_cpu_moe})" if d.n_cpu_moe in ("auto", "all") else ""
    layers = "layer 0" if n == 1 else f"layers 0-{n - 1}"
    return (f"{d.name}: n_cpu_moe {n}{how}: {entry.cpu_moe_bytes / MIB:.0f} MiB of expert weights of {layers} "
            f"in host memory; model weights {on_gpus}")


def _move_other(ledger: Ledger, key: str, need: int, exclude: list[int]) -> str | None:
    """'move X to GPUn' when moving an admitted model X off `key` frees enough for `need` there and X
    fits what is left on GPU n (assumed to use as much there)."""
    rem = ledger.remaining(key)
    if rem is None or key in ledger.shared():
        return None
    for e in sorted((e for e in ledger.entries if not e.blocked and e.use.get(key)), key=lambda e: -e.use[key]):
        if need > rem + e.use[key]:
            continue
        for dev in ledger.devices:
            if dev.gpu is None or dev.key == key or dev.integrated or dev.gpu in exclude:
                continue
            room = ledger.remaining(dev.key)
            if room is not None and e.use[key] <= room:
                return f"move {e.name} to {dev.key}"
    return None


def _llama_move(ledger: Ledger, d: Demand, ngl: int) -> int | None:
    for dev in ledger.devices:
        if dev.gpu is None or dev.gpu in d.gpus or dev.integrated:
            continue
        budgets = _budgets(ledger, [dev.gpu])
        try:
            if fits(predict(d.facts, d.settings, [dev.gpu], ngl, [], d.rule), budgets):  # type: ignore[arg-type]
                return dev.gpu
        except (GgufError, ValueError):
            return None
    return None


def _collision_text(ledger: Ledger, name: str, mine: int, where: str, key: str) -> str:
    others = [e for e in ledger.entries if not e.blocked and e.use.get(key)]
    if key in ledger.shared():
        others = [e for e in ledger.entries if not e.blocked and any(e.use.get(k) for k in ledger.shared())]
        amount = lambda e: sum(e.use.get(k, 0) for k in ledger.shared())  # noqa: E731
    else:
        amount = lambda e: e.use[key]  # noqa: E731
    parts = [f"{name}: {_gib(mine)} {where}"] + [f"{e.name}: {_gib(amount(e))}" for e in others]
    cap = ledger.capacity.get(key)
    limit = "an unknown amount of memory" if cap is None else f"{_gib(cap)} usable"
    return "overcommit: " + " + ".join(parts) + f" > {limit}"


def _vllm_use(d: Demand, by_key: dict[str, Device]) -> dict[str, int]:
    use: dict[str, int] = {}
    if not d.gpus:
        host = by_key.get(HOST)
        if host is not None and host.total_mib:
            use[HOST] = int(d.gpu_memory_utilization * host.total_mib) * MIB
        return use
    for g in d.gpus:
        dev = by_key.get(gpu_key(g))
        if dev is not None and dev.total_mib:
            use[gpu_key(g)] = int(d.gpu_memory_utilization * dev.total_mib) * MIB
    return use


def _admit_vllm(ledger: Ledger, d: Demand) -> Entry:
    by_key = {dev.key: dev for dev in ledger.devices}
    measured = bool(d.running and not d.changing and d.actual)
    use = d.actual if measured else _vllm_use(d, by_key)
    entry = Entry(d.name, dict(use or {}), "measured" if measured else "reserved",
                  gpu_memory_utilization=d.gpu_memory_utilization, blocked_field="gpu_memory_utilization")
    if d.problems:
        entry.blocked = "; ".join(d.problems)
        entry.blocked_field = getattr(d.problems[0], "field", "tensor_parallel_size")
        return entry
    for g in d.gpus:
        key = gpu_key(g)
        shares = [(e.name, e_gmu) for e, e_gmu in _vllm_on(ledger, key)]
        if shares and sum(s for _, s in shares) + d.gpu_memory_utilization > 1.0 + 1e-9:
            listed = " + ".join(f"{n} {s:g}" for n, s in shares + [(d.name, d.gpu_memory_utilization)])
            total = sum(s for _, s in shares) + d.gpu_memory_utilization
            entry.blocked = (f"gpu_memory_utilization of vLLM models on {key}: {listed} = {total:g} > 1.0; "
                             f"lower {d.name}'s to ≤ {max(1.0 - sum(s for _, s in shares), 0):.2f} or move it")
            return entry
    if d.running and not d.changing:
        return entry
    for key, amount in use.items():
        rem = ledger.remaining(key)
        if key == HOST and not ledger.shared() and not ledger.enforce_host:
            continue
        if rem is None or amount <= rem:
            continue
        dev = by_key[key]
        text = _collision_text(ledger, d.name, amount, f"on {key}", key)
        hints = []
        if dev.total_mib:
            frac = int(rem / MIB / dev.total_mib * 100) / 100
            if frac > 0:
                hints.append(f"lower gpu_memory_utilization to ≤ {frac:.2f}")
        other = _move_other(ledger, key, amount, d.gpus)
        if other is not None:
            hints.append(other)
        entry.blocked = text + ("; try " + " or ".join(hints) if hints else "")
        return entry
    return entry


def _vllm_on(ledger: Ledger, key: str) -> list[tuple[Entry, float]]:
    return [(e, e.gpu_memory_utilization) for e in ledger.entries
            if not e.blocked and e.gpu_memory_utilization is not None and e.use.get(key)]
