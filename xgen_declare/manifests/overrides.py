"""`spec.overrides`: per-host values, checked like the fields they set.

    spec:
      n_gpu_layers: all
      overrides:
        - hosts: {matchLabels: {gpu.model: RTX-4060}}
          set: {n_gpu_layers: 20, ctx_size: 4096}

Each entry is checked at load, on its own, by validating the spec with its `set` applied: a bad value is
reported under its own field (`spec.overrides[1].set.n_gpu_layers`, with its line), a combination the
override makes invalid (a tensor_split that no longer matches the gpus it sets) under `set`. Fields that
say which hosts a model is on, or name it, may not be overridden. Which entries apply on a host, and the
conflicts between them, are the host's to decide: desired/hosts.py `with_overrides`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from xgen_declare.errors import Problem
from xgen_declare.manifests.request import ModelLoadRequest
from xgen_declare.readers.validation_errors import problems_from_validation
from xgen_declare.readers.yamlsource import Document

__all__ = ["FIXED", "base_spec", "check_overrides", "set_field"]

# field -> why it is the same on every host
FIXED = {
    "name": "metadata.name is the model's one name on every host",
    "hosts": "hosts says which hosts run the model; an override is already for some of them",
    "overrides": "overrides do not nest",
    "distributed": "a model across hosts is one cluster, configured the same on all of them",
    "ray": "a model across hosts is one cluster, configured the same on all of them",
    "nodes": "a model across hosts is one cluster, configured the same on all of them",
    "rpc_server_host": "a model across hosts is one cluster, configured the same on all of them",
}


def set_field(i: int, name: str = "") -> str:
    """"spec.overrides[1].set.n_gpu_layers" (the whole `set` without a name)."""
    return f"spec.overrides[{i}].set" + (f".{name}" if name else "")


def base_spec(spec_data: object) -> dict[str, Any]:
    """The spec as written, without its overrides (the values every host starts from)."""
    return {k: v for k, v in spec_data.items() if k != "overrides"} if isinstance(spec_data, dict) else {}


def check_overrides(doc: Document, spec: ModelLoadRequest) -> list[Problem]:
    """Every problem of every override of a spec that is valid itself."""
    base = base_spec(doc.data.get("spec") if isinstance(doc.data, dict) else None)
    raw = doc.data["spec"].get("overrides") if base else None
    problems: list[Problem] = []
    for i, override in enumerate(spec.overrides):
        written = raw[i]["set"] if isinstance(raw, list) and i < len(raw) else override.set
        problems.extend(_check_one(doc, i, base, written))
    return problems


def _check_one(doc: Document, i: int, base: dict[str, Any], values: dict[str, Any]) -> list[Problem]:
    at = ("spec", "overrides", i, "set")
    fixed = [Problem(doc.file, doc.line_of(at + (k,)), set_field(i, str(k)), f"may not be overridden per host: {why}",
                     f"remove {k} from this override") for k in values if (why := FIXED.get(str(k)))]
    values = {k: v for k, v in values.items() if str(k) not in FIXED}
    try:
        ModelLoadRequest.model_validate({**base, **values})
    except ValidationError as exc:
        return fixed + [_under_set(p, i, values) for p in problems_from_validation(exc, _SetDoc(doc, at, values),
                                                                                   ModelLoadRequest)]
    return fixed


def _under_set(p: Problem, i: int, values: dict[str, Any]) -> Problem:
    """A problem of the spec with override i applied, told as the override's."""
    top = p.field.split(".", 1)[0].split("[", 1)[0]
    if top in values:
        return replace(p, field=f"{set_field(i)}.{p.field}")
    return replace(p, field=set_field(i), message=f"makes spec.{p.field} invalid on its hosts: {p.message}")


class _SetDoc:
    """The document as problems_from_validation reads it for the spec with one override applied: the line
    of a field the override sets is the override's own line."""

    def __init__(self, doc: Document, at: tuple, values: dict[str, Any]):
        self.file, self._doc, self._at, self._values = doc.file, doc, at, values

    def line_of(self, path: tuple) -> int:
        path = tuple(path)
        return self._doc.line_of(self._at + path if path and path[0] in self._values else self._at)
