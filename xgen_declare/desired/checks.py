"""What this host cannot give a resolved model, as problems with file, line, field and what to do.

`gpu_problems` is the one GPU check behind `validate --inventory`, `render`, `plan`, `apply`, the daemon
and the API (a model with a problem here is Blocked); `host_problems` adds the backend's availability;
`placement_problems` turns the memory ledger of a set of models into problems for `validate`.
"""

from __future__ import annotations

from xgen_declare.backends.profile import VLLM
from xgen_declare.backends.families import GPU_KIND
from xgen_declare.desired.demands import place
from xgen_declare.desired.resolve import Resolved
from xgen_declare.errors import Problem
from xgen_declare.inventory.model import Inventory


def host_problems(res: Resolved, inventory: Inventory) -> list[Problem]:
    """Checks that need the host, for `validate --inventory`: the backend, then `gpu_problems`."""
    out = []
    decl, sel = res.decl, res.selection
    if sel.unavailable:
        out.append(Problem(decl.file, decl.line_of("backend"), "spec.backend", sel.unavailable,
                           "install the backend, fix `binaries:` in xgen-declare.yaml, or pick another backend"))
    return out + gpu_problems(res, inventory)


def gpu_problems(res: Resolved, inventory: Inventory) -> list[Problem]:
    """The GPUs a manifest asks for against the host's.

    Every index in `gpus` must exist. Without `gpus` the model gets every GPU of its backend's kind, and
    `tensor_split` (at most one entry per GPU), `main_gpu` (a position) and vLLM's `tp x pp` must fit that
    count; with `gpus` listed, request.py checks them against the list."""
    decl, spec, backend = res.decl, res.spec, res.backend
    out = []
    known = {g.index for g in inventory.gpus}
    for pos, index in enumerate(spec.gpus or []):
        if index not in known:
            have = ", ".join(str(i) for i in sorted(known)) or "none"
            out.append(Problem(decl.file, decl.line_of("gpus", pos), f"spec.gpus[{pos}]",
                               f"GPU {index} does not exist on this host (GPUs: {have})",
                               "see `xgen-declare gpus`"))
    if spec.gpus is not None or backend is None or GPU_KIND[backend] is None:
        return out
    gets = res.gpus
    n, ids = len(gets), ", ".join(str(i) for i in gets) or "none"
    where = f"{backend} gets {n} GPU(s) on this host ({ids})"
    if res.engine == VLLM:
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


def placement_problems(models: list[Resolved], inventory: Inventory, margin_mib: int,
                       host_memory_mib: int | None = None) -> list[Problem]:
    """The memory ledger of these models on `inventory` (nothing running) as problems: a model that does
    not fit, a failed vLLM pre-check (errors), placement unknown (warnings). For `validate --inventory`."""
    ledger = place(models, inventory, margin_mib, host_memory_mib=host_memory_mib)
    by_name = {r.name: r.decl for r in models}
    out = []
    for name, reason in sorted(ledger.blocked.items()):
        decl = by_name[name]
        field_name = ledger.entry(name).blocked_field
        line = decl.line_of(field_name) if decl.spec.is_set(field_name) else decl.line
        out.append(Problem(decl.file, line, f"spec.{field_name}", reason, "see `xgen-declare plan` for the ledger"))
    for name, warning in sorted(ledger.warnings.items()):
        decl = by_name[name]
        out.append(Problem(decl.file, decl.line_of("model_path"), "spec.model_path", warning, severity="warning"))
    return out
