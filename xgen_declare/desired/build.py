"""Desired state: manifests + config + inventory (+ ports held in the state) -> rendered models.

Shared by `render`, `plan`, `apply` and the daemon, so they all see the same commands. A model whose
manifest is invalid or that cannot be rendered gets a problem, never an exception: the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Collection, Mapping

from xgen_declare.backends.selection import select_backend
from xgen_declare.config import Config
from xgen_declare.errors import Problem, RenderError
from xgen_declare.inventory.model import Inventory
from xgen_declare.manifests.load import LoadResult, ModelDecl, load_paths
from xgen_declare.desired.ports import assign_ports
from xgen_declare.desired.render import Rendered, Renderer
from xgen_declare.desired.ray import add_nodes, per_node, split_models, this_host_names
from xgen_declare.desired import rpc, rpc_remote
from xgen_declare.backends.families import model_family
from xgen_declare.backends.families import GPU_KIND
from xgen_declare.desired.demands import gpus_for, place
from xgen_declare.placement.ledger import Entry, Ledger


@dataclass
class Desired:
    load: LoadResult
    rendered: dict[str, Rendered] = field(default_factory=dict)
    # model name -> problems that stop it from being rendered (invalid manifest, render error, ...)
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    ledger: Ledger | None = None  # memory per device across the models (None: placement not computed)
    dormant: set[str] = field(default_factory=set)  # on-demand models not wanted now: outside the ledger
    # model name -> what this host cannot give it (gpu_problems): rendered, but Blocked, outside the ledger
    blocked: dict[str, list[Problem]] = field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        return set(self.rendered) | set(self.problems)


def host_problems(decl: ModelDecl, inventory: Inventory) -> list[Problem]:
    """Checks that need the host, for `validate --inventory`: the backend, then `gpu_problems`."""
    out = []
    sel = select_backend(decl.spec, inventory)
    if sel.unavailable:
        out.append(Problem(decl.file, decl.line_of("backend"), "spec.backend", sel.unavailable,
                           "install the backend, fix `binaries:` in xgen-declare.yaml, or pick another backend"))
    return out + gpu_problems(decl, inventory)


def gpu_problems(decl: ModelDecl, inventory: Inventory) -> list[Problem]:
    """The GPUs a manifest asks for against the host's: the one check behind `validate --inventory`,
    `render`, `plan`, `apply`, the daemon and the API (a model with a problem here is Blocked).

    Every index in `gpus` must exist. Without `gpus` the model gets every GPU of its backend's kind, and
    `tensor_split` (at most one entry per GPU), `main_gpu` (a position) and vLLM's `tp x pp` must fit that
    count; with `gpus` listed, request.py checks them against the list."""
    spec = decl.spec
    out = []
    known = {g.index for g in inventory.gpus}
    for pos, index in enumerate(spec.gpus or []):
        if index not in known:
            have = ", ".join(str(i) for i in sorted(known)) or "none"
            out.append(Problem(decl.file, decl.line_of("gpus", pos), f"spec.gpus[{pos}]",
                               f"GPU {index} does not exist on this host (GPUs: {have})",
                               "see `xgen-declare gpus`"))
    backend = select_backend(spec, inventory).backend
    if spec.gpus is not None or backend is None or GPU_KIND[backend] is None:
        return out
    gets = gpus_for(decl, backend, inventory)
    n, ids = len(gets), ", ".join(str(i) for i in gets) or "none"
    where = f"{backend} gets {n} GPU(s) on this host ({ids})"
    if model_family(spec.model_path, backend) == "vllm":
        tp_pp = spec.tensor_parallel_size * spec.pipeline_parallel_size
        if spec.distributed is None and tp_pp > n:
            out.append(Problem(decl.file, decl.line_of("tensor_parallel_size"), "spec.tensor_parallel_size",
                               f"tensor_parallel_size x pipeline_parallel_size = {tp_pp} needs {tp_pp} GPUs but "
                               f"{backend} gets {n} on this host ({ids})",
                               "lower the sizes, or run it on a host with more GPUs"))
        return out
    split = spec.tensor_split
    if split and split != "auto" and len(split) > n:  # fewer: llama.cpp gives the GPUs after them nothing
        out.append(Problem(decl.file, decl.line_of("tensor_split"), "spec.tensor_split",
                           f"has {len(split)} entries but {where}",
                           "give at most one proportion per GPU, or list the GPUs to use in gpus"))
    if spec.main_gpu >= max(n, 1):
        out.append(Problem(decl.file, decl.line_of("main_gpu"), "spec.main_gpu", f"is {spec.main_gpu} but {where}",
                           f"main_gpu is a position among them: use 0..{max(n - 1, 0)}, or list the GPUs to use "
                           "in gpus"))
    return out


def placement_problems(decls: list[ModelDecl], inventory: Inventory, margin_mib: int) -> list[Problem]:
    """The memory ledger of these models on `inventory` (nothing running) as problems: a model that does
    not fit, a failed vLLM pre-check (errors), placement unknown (warnings). For `validate --inventory`."""
    ledger = place(decls, inventory, margin_mib)
    by_name = {d.name: d for d in decls}
    out = []
    for name, reason in sorted(ledger.blocked.items()):
        decl = by_name[name]
        vllm = model_family(decl.spec.model_path, decl.spec.backend, decl.spec.hf_file) == "vllm"
        field_name = "tensor_parallel_size" if "tensor parallel" in reason or "tensor_parallel" in reason else (
            "gpu_memory_utilization" if vllm or "gpu_memory_utilization" in reason else "n_gpu_layers")
        line = decl.line_of(field_name) if decl.spec.is_set(field_name) else decl.line
        out.append(Problem(decl.file, line, f"spec.{field_name}", reason, "see `xgen-declare plan` for the ledger"))
    for name, warning in sorted(ledger.warnings.items()):
        decl = by_name[name]
        out.append(Problem(decl.file, decl.line_of("model_path"), "spec.model_path", warning, severity="warning"))
    return out


def build_desired(paths: list[str], config: Config, inventory: Inventory, *,
                  held_ports: dict[str, int] | None = None, preview: bool = False,
                  taken_ports: set[int] | None = None, check_host: bool = False, placement: bool = True,
                  seen: Mapping[str, Any] | None = None, changing: frozenset[str] = frozenset(),
                  awake: Collection[str] | None = None) -> Desired:
    """`placement`: build the memory ledger and resolve `n_gpu_layers`/`tensor_split: auto` (reads GGUF
    headers and config.json); `seen`/`changing`: the running models, see placement.gather.place.
    `awake`: the on-demand models wanted running now (the router's); None = those running now. The
    others are `dormant`: rendered (their port stays theirs) but left out of the memory ledger."""
    load = load_paths(paths)
    desired = Desired(load=load)
    for name, probs in load.invalid_names.items():
        desired.problems[name] = list(probs)
    models = list(load.models)
    if check_host:
        ok = []
        for decl in models:
            probs = host_problems(decl, inventory)
            if probs:
                desired.problems[decl.name] = probs
            else:
                ok.append(decl)
        models = ok
    models, ray_nodes = split_models(models, this_host_names(config), config)  # distributed: docs/ray.md
    models, rpc_workers = rpc_remote.split_models(models, rpc.host_names(config))  # RPC: docs/rpc.md
    ports = assign_ports({m.name: m.spec.port for m in models}, config.ports.start, config.ports.end,
                         held_ports, preview=preview, taken=taken_ports)
    desired.dormant = dormant_models(models, awake, seen)
    desired.blocked = {m.name: probs for m in models if (probs := gpu_problems(m, inventory))}
    if placement:
        placed = [per_node(m) for m in models if m.name not in desired.dormant and m.name not in desired.blocked]
        desired.ledger = place(placed, inventory, config.placement.margin_mib, seen, changing)
    renderer = Renderer(config, inventory)
    for decl in models:
        try:
            entry = desired.ledger.entry(decl.name) if desired.ledger else None
            desired.rendered[decl.name] = renderer.render(with_placement(decl, entry), ports[decl.name])
        except RenderError as exc:
            line = decl.line_of(exc.field.split(".", 1)[1]) if exc.field.startswith("spec.") else decl.line
            desired.problems[decl.name] = [Problem(decl.file, line, exc.field, str(exc), exc.hint)]
    add_nodes(desired, ray_nodes, renderer, config)
    rpc_remote.add_entries(desired, rpc_workers, renderer, config)
    return desired


def dormant_models(models: list[ModelDecl], awake: Collection[str] | None,
                   seen: Mapping[str, Any] | None) -> set[str]:
    if awake is None:
        awake = {name for name, s in (seen or {}).items() if getattr(s, "running", False)}
    return {m.name for m in models if m.spec.activation == "on-demand" and m.name not in awake}


def with_placement(decl: ModelDecl, entry: Entry | None) -> ModelDecl:
    """The manifest with `auto` replaced by the chosen numbers (rendered explicitly, so --fit is off)."""
    if entry is None or not entry.resolved:
        return decl
    spec = decl.spec
    update: dict = {}
    if spec.n_gpu_layers == "auto" and entry.n_gpu_layers is not None:
        update["n_gpu_layers"] = entry.n_gpu_layers
    if spec.tensor_split == "auto":
        update["tensor_split"] = [float(x) for x in entry.tensor_split or []]
    return replace(decl, spec=spec.model_copy(update=update)) if update else decl
