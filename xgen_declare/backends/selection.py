"""`backend: auto` -> a concrete backend, explained; explicit backends are checked against the host."""

from __future__ import annotations

from pathlib import Path

from ..inventory.model import Inventory
from ..request import ModelLoadRequest, is_gguf_path
from . import GGUF_ORDER, HF_ORDER, Selection


def _why_not(inventory: Inventory, name: str) -> str:
    b = inventory.backend(name)
    if b is None:
        return "not in the inventory"
    return b.reason or "unavailable"


def select_backend(spec: ModelLoadRequest, inventory: Inventory) -> Selection:
    if spec.backend != "auto":
        if inventory.is_available(spec.backend):
            return Selection(spec.backend, f"{spec.backend} set in the manifest")
        return Selection(spec.backend, f"{spec.backend} set in the manifest",
                         unavailable=f"backend {spec.backend} is not available on this host: "
                                     f"{_why_not(inventory, spec.backend)}")
    if is_gguf_path(spec.model_path):
        kind, order = "a GGUF file", GGUF_ORDER
    else:
        local = Path(spec.model_path).is_dir()
        kind = "a local HuggingFace directory" if local else "a HuggingFace model id"
        order = HF_ORDER
    skipped = []
    for name in order:
        if inventory.is_available(name):
            return Selection(name, f"auto: {name} is the first available backend for {kind}", tuple(skipped))
        skipped.append((name, _why_not(inventory, name)))
    return Selection(None, f"auto: no backend available for {kind}", tuple(skipped),
                     unavailable=f"no backend available for {kind}: "
                                 + "; ".join(f"{b}: {why}" for b, why in skipped))
