"""Which declared models this host serves: each manifest's `spec.hosts` selector (readers/selector.py)
against the host's labels (inventory/labels.py). Pure; build.py calls it once per pass, before anything is
resolved, so a model for other hosts is never rendered, given a port or counted in the memory ledger here.

A model without `hosts` is for every host. A model that is not for this host is not an error: the plan
shows it as such (reconciler/plan.py, `NotHere`), with the requirement that failed and this host's value.

A model for this host then gets its `spec.overrides` for this host (`with_overrides`), in order, before it
is resolved: every later stage sees the host's values. Two that select this host and set one field to
different values make the model invalid here (its last good process keeps running), naming both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from xgen_declare.config import Config, HostSection
from xgen_declare.errors import Problem
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.manifests.overrides import base_spec, set_field
from xgen_declare.manifests.request import ModelLoadRequest

__all__ = ["Overridden", "for_another_host", "not_for_host", "select_for_host", "with_overrides"]


def for_another_host(config: Config) -> Config:
    """The config for a preview of another host (`--inventory FILE`): this machine's `host.labels` are not
    that host's; its labels are those of its inventory file."""
    return config.model_copy(update={"host": HostSection()})


def not_for_host(decl: ModelDecl, labels: Mapping[str, str]) -> str | None:
    """Why `decl` is not for a host with these labels ("gpu.vendor In [amd] (this host: nvidia)"), or None."""
    hosts = decl.spec.hosts
    return None if hosts is None else hosts.mismatch(labels)


def select_for_host(decls: Sequence[ModelDecl],
                    labels: Mapping[str, str]) -> tuple[list[ModelDecl], dict[str, str]]:
    """The models for this host, in order, and name -> why for the others."""
    here: list[ModelDecl] = []
    elsewhere: dict[str, str] = {}
    for decl in decls:
        why = not_for_host(decl, labels)
        if why is None:
            here.append(decl)
        else:
            elsewhere[decl.name] = why
    return here, elsewhere


@dataclass
class Overridden:
    """A model with this host's overrides applied: the decl every later stage reads, what was applied
    ("spec.overrides[0] (gpu.vendor In [amd]): n_gpu_layers=20"), and the problems that make it invalid here."""
    decl: ModelDecl
    applied: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def with_overrides(decl: ModelDecl, labels: Mapping[str, str]) -> Overridden:
    """`decl` with the values of every override whose selector picks a host with these labels, in order."""
    chosen = [(i, o) for i, o in enumerate(decl.spec.overrides) if o.hosts.matches(labels)]
    if not chosen:
        return Overridden(decl)
    values: dict[str, object] = {}
    setter: dict[str, int] = {}
    problems: list[Problem] = []
    for i, o in chosen:
        for key, value in o.set.items():
            if key in values and values[key] != value:
                j = setter[key]
                problems.append(Problem(
                    decl.file, decl.line_of("overrides", i, "set", key), set_field(i, key),
                    f"conflicts with spec.overrides[{j}] (line {decl.line_of('overrides', j, 'set', key)}): both "
                    f"select this host and set {key} to {value!r} and {values[key]!r}",
                    "set it in one of them, or make their hosts selectors exclude each other"))
            else:
                values[key], setter[key] = value, i
    if problems:
        return Overridden(decl, problems=problems)
    base = base_spec(decl.doc.data.get("spec")) if decl.doc is not None and isinstance(decl.doc.data, dict) \
        else decl.spec.model_dump(exclude_unset=True, exclude={"overrides"})
    try:
        spec = ModelLoadRequest.model_validate({**base, **values})
    except ValidationError as exc:  # each was valid alone: together they are not
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        first = chosen[0][0]
        return Overridden(decl, problems=[Problem(
            decl.file, decl.line_of("overrides", first), "spec.overrides",
            f"the overrides for this host ({', '.join(f'[{i}]' for i, _ in chosen)}) together make the spec "
            f"invalid: {text}", "make them agree, or narrow their hosts selectors")])
    applied = [f"spec.overrides[{i}] ({o.hosts.describe() or 'every host'}): "
               + ", ".join(f"{k}={v!r}" for k, v in o.set.items()) for i, o in chosen]
    return Overridden(replace(decl, spec=spec), applied)
