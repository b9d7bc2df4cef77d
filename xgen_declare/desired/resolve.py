"""Resolve a model once per pass: manifest + host -> `Resolved` (backend, family, absolute model path,
the GPUs it gets, and later the placement values chosen for it).

Every later stage (placement demands, render, Ray nodes, RPC entries, host checks) reads the `Resolved`
and never works the backend out again: `resolve()` is the one caller of `select_backend`, so render,
plan and the ledger cannot disagree about what a model runs on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from xgen_declare.processes.settings import Placed
from xgen_declare.backends.profile import LLAMA, Profile, engine_of, profile
from xgen_declare.backends.modelpath import gguf_repo
from xgen_declare.desired.selection import Selection, select_backend
from xgen_declare.inventory.model import Inventory
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.manifests.request import ModelLoadRequest


@dataclass(frozen=True)
class Resolved:
    decl: ModelDecl
    selection: Selection
    engine: str                    # "llama" (a GGUF through llama.cpp) or "vllm" (backends/profile.py)
    model_path: str                # absolute where the manifest gave a relative file (resolve_model_path)
    gpus: tuple[int, ...] = ()     # host indices it gets: its `gpus`, else every visible GPU of its kind
    placed: bool = False           # `auto` values replaced by the ledger's choice (with_placement)

    @property
    def name(self) -> str:
        return self.decl.name

    @property
    def spec(self) -> ModelLoadRequest:
        return self.decl.spec

    @property
    def file(self) -> str | None:
        return self.decl.file

    @property
    def backend(self) -> str | None:
        return self.selection.backend

    @property
    def family(self) -> str | None:
        """The template family (templates/<family>.j2), None without a backend."""
        return self.profile.family if self.profile else None

    @property
    def profile(self) -> Profile | None:
        """What the chosen backend is and does (backends/profile.py); None without a backend."""
        return profile(self.backend) if self.backend else None

    @property
    def hf_repo(self) -> tuple[str, str | None] | None:
        """(repo, quant) when llama-server downloads the model from a HuggingFace repository."""
        p = self.profile
        return gguf_repo(self.spec.model_path, self.spec.hf_file) if p and p.downloads_hf_repo else None

    def placement_values(self) -> Placed | None:
        """n_gpu_layers / tensor_split as rendered (llama.cpp only), kept in the state record so the next
        pass knows what the running process was started with without reading its argv."""
        if self.engine != LLAMA or self.backend is None:
            return None
        split = self.spec.tensor_split
        return Placed(self.spec.n_gpu_layers, [float(x) for x in split] if isinstance(split, list) else split,
                      self.spec.n_cpu_moe or None)


def resolve(decl: ModelDecl, inventory: Inventory) -> Resolved:
    selection = select_backend(decl.spec, inventory)
    backend = selection.backend
    spec = decl.spec
    engine = engine_of(spec.model_path, backend or spec.backend, spec.hf_file)
    gpus = tuple(gpus_for(spec, backend, inventory)) if backend else ()
    return Resolved(decl, selection, engine, resolve_model_path(spec.model_path, decl.file), gpus)


def with_decl(res: Resolved, decl: ModelDecl) -> Resolved:
    """The same resolution for an edited manifest whose backend cannot differ (env, pipeline stages)."""
    return replace(res, decl=decl)


def gpus_for(spec: ModelLoadRequest, backend: str, inventory: Inventory) -> list[int]:
    """Host indices of the GPUs the model gets: its `gpus`, else every visible GPU of the backend's kind."""
    p = profile(backend)
    if spec.gpus is not None:
        return list(spec.gpus) if p.takes_gpus else []
    kind = p.gpu_kind
    if kind is None:
        return []
    return [g.index for g in inventory.gpus if not g.hidden and (kind == "any" or g.vendor == kind)]


def resolve_model_path(model_path: str, manifest_file: str | None) -> str:
    """A relative .gguf path, or one starting with ./ or ../, is relative to the manifest's directory.
    Anything else (an absolute path, a HuggingFace id org/model) is passed on unchanged."""
    if manifest_file is None or os.path.isabs(model_path) or "://" in model_path:  # a URL source not fetched yet
        return model_path
    if model_path.startswith(("./", "../")) or (model_path.lower().endswith(".gguf")):
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(manifest_file)), model_path))
    return model_path


def with_placement(res: Resolved, n_gpu_layers: int | None, tensor_split: list | None,
                   n_cpu_moe: int | None = None) -> Resolved:
    """`auto` replaced by the chosen numbers (rendered explicitly, so llama-server's --fit is off)."""
    spec = res.spec
    update: dict = {}
    if spec.n_cpu_moe == "auto":
        update["n_cpu_moe"] = n_cpu_moe or 0
    if spec.n_gpu_layers == "auto" and n_gpu_layers is not None:
        update["n_gpu_layers"] = n_gpu_layers
    if spec.tensor_split == "auto":
        update["tensor_split"] = [float(x) for x in tensor_split or []]
    if not update:
        return res
    return replace(res, decl=replace(res.decl, spec=spec.model_copy(update=update)), placed=True)
