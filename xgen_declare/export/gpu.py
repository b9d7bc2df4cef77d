"""GPUs a model needs in a pod: how many, which vendor's extended resource, which nodes.

A manifest constrains the GPU with annotations (they describe placement, they are not identity, so
they stay out of `metadata.labels`, which the export copies onto the objects):

    xgen-declare/gpu-vendor      nvidia | amd: needed for llama-server-vulkan (runs on both) unless
                                 kubernetes.gpu_vendor or the --inventory's GPUs decide
    xgen-declare/gpu-product     NVIDIA: accepted `nvidia.com/gpu.product` values, comma-separated
                                 (GPU feature discovery writes e.g. NVIDIA-A100-SXM4-80GB)
    xgen-declare/gpu-memory-mib  NVIDIA: minimum `nvidia.com/gpu.memory` (MiB per GPU)
    xgen-declare/gpu-family      AMD: accepted `amd.com/gpu.family` values (node labeller: AI, NV, ...)
    xgen-declare/gpu-vram        AMD: accepted `amd.com/gpu.vram` values (e.g. 64G,192G); the label is
                                 text, so Kubernetes cannot compare it and a minimum is not offered

Each becomes a `requiredDuringSchedulingIgnoredDuringExecution` node affinity term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xgen_declare.backends.profile import LLAMA, VLLM, profile
from xgen_declare.backends.families import GPU_KIND
from xgen_declare.config import Config
from xgen_declare.errors import Problem
from xgen_declare.inventory.model import Inventory
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.readers.validation_errors import did_you_mean

PREFIX = "xgen-declare/"
VENDOR, PRODUCT, MEMORY, FAMILY_KEY, VRAM = (PREFIX + k for k in (
    "gpu-vendor", "gpu-product", "gpu-memory-mib", "gpu-family", "gpu-vram"))
KNOWN = (VENDOR, PRODUCT, MEMORY, FAMILY_KEY, VRAM)
RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
# annotation -> (vendor it applies to, node label it selects on)
NODE_LABEL = {PRODUCT: ("nvidia", "nvidia.com/gpu.product"), MEMORY: ("nvidia", "nvidia.com/gpu.memory"),
              FAMILY_KEY: ("amd", "amd.com/gpu.family"), VRAM: ("amd", "amd.com/gpu.vram")}
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass
class GpuNeeds:
    count: int
    vendor: str | None = None
    match_expressions: list[dict] = field(default_factory=list)

    @property
    def resource(self) -> str | None:
        return RESOURCE[self.vendor] if self.vendor else None


def gpu_count(decl: ModelDecl, backend: str) -> int:
    """`gpus` when listed; else TP x PP for vLLM, one per tensor_split entry (or one) for llama.cpp."""
    spec = decl.spec
    prof = profile(backend)
    if prof.gpu_kind is None:
        return 0
    if prof.engine == LLAMA and spec.n_gpu_layers == 0:
        return 0
    if spec.gpus:
        return len(spec.gpus)
    if prof.engine == VLLM:
        return spec.tensor_parallel_size * spec.pipeline_parallel_size
    return max(len(spec.tensor_split), 1)


def annotations(decl: ModelDecl) -> dict[str, str]:
    data = decl.doc.data if decl.doc is not None else {}
    found = (data.get("metadata") or {}).get("annotations") or {}
    return {str(k): str(v) for k, v in found.items()}


def gpu_needs(decl: ModelDecl, backend: str, config: Config,
              nodes: Inventory | None) -> tuple[GpuNeeds | None, list[Problem]]:
    notes = annotations(decl)
    problems: list[Problem] = []

    def problem(key: str, message: str, hint: str = "") -> None:
        problems.append(Problem(decl.file, _line(decl, key), f"metadata.annotations.{key}", message, hint))

    for key in notes:
        if key.startswith(PREFIX) and key not in KNOWN:
            problem(key, "unknown GPU constraint", did_you_mean(key, list(KNOWN)))
    count = gpu_count(decl, backend)
    if count == 0:
        for key in KNOWN:
            if key in notes:
                problem(key, f"{backend} with these settings uses no GPU, so a GPU constraint cannot apply",
                        "remove the annotation")
        return (None if problems else GpuNeeds(0)), problems
    vendor = _vendor(decl, backend, config, nodes, notes, problem)
    if vendor is None:
        return None, problems
    limit = len(nodes.gpus) if nodes is not None and nodes.gpus else config.kubernetes.max_gpus_per_node
    if count > limit:
        where = "the --inventory's node has" if nodes is not None and nodes.gpus else \
            "a node has at most (kubernetes.max_gpus_per_node)"
        problems.append(Problem(decl.file, decl.line, "spec", f"needs {count} GPUs but {where} {limit}; a "
                                "vLLM model can span nodes with nodes + distributed: ray (a LeaderWorkerSet)",
                                "lower gpus / tensor_parallel_size x pipeline_parallel_size, or spread it over "
                                "nodes (docs/ray.md, docs/kubernetes.md)"))
    needs = GpuNeeds(count, vendor)
    for key, (key_vendor, label) in NODE_LABEL.items():
        if key not in notes:
            continue
        if key_vendor != vendor:
            instead = {MEMORY: f" (AMD: list the accepted amd.com/gpu.vram values in {VRAM})"}.get(key, "")
            problem(key, f"applies to {key_vendor} GPUs but this model runs on {vendor}{instead}", "remove it")
            continue
        expression = _expression(key, label, notes[key], problem)
        if expression:
            needs.match_expressions.append(expression)
    return (None if problems else needs), problems


def _vendor(decl, backend, config, nodes, notes, problem) -> str | None:
    kind = GPU_KIND[backend]
    said = notes.get(VENDOR)
    if said is not None and said not in RESOURCE:
        problem(VENDOR, f"is {said!r}; use nvidia or amd")
        return None
    if kind in RESOURCE:
        if said is not None and said != kind:
            problem(VENDOR, f"is {said} but {backend} runs on {kind} GPUs", "remove it or change spec.backend")
            return None
        return kind
    if said:
        return said
    if config.kubernetes.gpu_vendor:
        return config.kubernetes.gpu_vendor
    vendors = {g.vendor for g in nodes.gpus} if nodes is not None else set()
    if len(vendors) == 1:
        return vendors.pop()
    problem(VENDOR, f"{backend} runs on NVIDIA and AMD GPUs and nothing says which this model gets",
            f"annotate the manifest with {VENDOR}: nvidia|amd, or set kubernetes.gpu_vendor")
    return None


def _expression(key: str, label: str, value: str, problem) -> dict | None:
    if key == MEMORY:
        if not value.strip().isdigit() or int(value) < 1:
            problem(key, f"is {value!r}; give the minimum memory per GPU in MiB, e.g. \"81920\"")
            return None
        return {"key": label, "operator": "Gt", "values": [str(int(value) - 1)]}
    values = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in values if len(v) > 63 or not _LABEL_VALUE.match(v)]
    if not values or bad:
        problem(key, f"{', '.join(bad) or 'empty'}: not a node label value (letters, digits, '-', '_', '.')",
                "use the values the operator writes on the nodes (kubectl get nodes --show-labels)")
        return None
    return {"key": label, "operator": "In", "values": values}


def _line(decl: ModelDecl, key: str) -> int:
    return decl.doc.line_of(("metadata", "annotations", key)) if decl.doc else decl.line
