"""Who answers each name a client may send in `model` (render.served_names: the model's name, its aliases
and, for vLLM, its model id). Pure: the router's table (router/table.py), the plan's notes
(reconciler/apply.py) and the API's load refusal (api/declare.py) all decide with these rules, so what
the router does is what `plan`, the log and /v1/models say.

A name always wins over an alias, an alias over a model id; an alias or model id two models claim goes
to the first by name, and the other claim is a conflict (reported, never silent).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from xgen_declare.desired.render import served_names

__all__ = ["claims", "clashes"]


def claims(aliases: Mapping[str, Sequence[str]], decls: Iterable) -> tuple[dict[str, str], list[str]]:
    """`aliases`: model name -> its aliases, for every routed model; `decls`: manifests.ModelDecl (their
    model ids). Returns (alias or model id -> the model that answers it, conflicts in words)."""
    owner: dict[str, str] = {}
    conflicts: list[str] = []
    for name in sorted(aliases):
        for alias in aliases[name]:
            if alias in aliases and alias != name:
                conflicts.append(f"alias {alias!r} of {name} is the name of another model: ignored")
            elif alias in owner and owner[alias] != name:
                conflicts.append(f"alias {alias!r} is claimed by {owner[alias]} and {name}: {owner[alias]} answers")
            else:
                owner.setdefault(alias, name)
    explicit = dict(owner)
    for d in sorted(decls, key=lambda d: d.name):
        for model_id in (n for n in _served(d) if n != d.name and n not in d.spec.alias):
            if model_id in aliases or model_id in explicit:
                continue  # a model's name or alias says it: that one answers
            if model_id in owner and owner[model_id] != d.name:
                conflicts.append(f"model id {model_id!r} is served by {owner[model_id]} and {d.name}: "
                                 f"{owner[model_id]} answers")
            else:
                owner[model_id] = d.name
    return owner, conflicts


def clashes(decl, others: Iterable) -> list[tuple[str, str, object]]:
    """The names `decl` would serve that another model already serves: (what, name, that model's decl),
    `what` being "name", "alias" or "model id" (of `decl`). Any overlap counts, whichever would win."""
    theirs: dict[str, object] = {}
    for other in sorted(others, key=lambda d: d.name):
        for served in _served(other):
            theirs.setdefault(served, other)
    out = []
    for served in _served(decl):
        other = theirs.get(served)
        if other is not None:
            what = "name" if served == decl.name else "alias" if served in decl.spec.alias else "model id"
            out.append((what, served, other))
    return out


def _served(d) -> list[str]:
    return served_names(d.name, d.spec, getattr(d, "file", None))
