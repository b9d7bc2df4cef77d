"""Turn pydantic's ValidationError into `Problem`s with file, line, field path and a hint."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from xgen_declare.errors import Problem
from xgen_declare.readers.yamlsource import Document


def field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated, list, tuple):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found:
                return found
    return None


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    cls: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) and cls is not None:  # an item of a list of sub-objects
            continue
        if cls is None or not isinstance(part, str) or part not in cls.model_fields:
            return None
        cls = _submodel(cls.model_fields[part].annotation)
    return cls


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return "valid fields: " + ", ".join(choices)


def _hint(err: dict, root: type[BaseModel], loc: tuple) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        if parent is not None:
            return did_you_mean(str(loc[-1]), [n for n, f in parent.model_fields.items() if not f.exclude])
        return "remove this field"
    if kind == "missing":
        return f"add `{loc[-1]}`"
    if kind in ("literal_error", "enum"):
        return "use one of the listed values"
    if kind.startswith("int_"):
        return "write a whole number"
    if kind.startswith("float_"):
        return "write a number"
    if kind.startswith("bool_"):
        return "write true or false"
    if kind in ("string_type", "str_type"):
        return "write a string (quote it if YAML reads it as something else)"
    if kind in ("list_type",):
        return "write a YAML list, e.g. [a, b]"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "write a YAML mapping (key: value)"
    return ""


def _split(message: str) -> tuple[str, str]:
    head, sep, tail = message.partition("; ")
    return (head, tail) if sep else (message, "")


class CrossFieldErrors(ValueError):
    """Several cross-field problems at once, each tied to its own field (a model validator raises it;
    `problems_from_validation` reports each under its own field)."""

    def __init__(self, problems: list[tuple[str | tuple, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))


def problems_from_validation(exc: ValidationError, doc: Document, root: type[BaseModel],
                             prefix: tuple = ()) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldErrors):
            for name, message in cause.problems:  # a field's name, or its path under loc (a tuple)
                sub = loc + (name if isinstance(name, tuple) else (name,))
                msg, hint = _split(message)
                problems.append(Problem(doc.file, doc.line_of(sub), field_path(sub), msg, hint))
            continue
        message = err["msg"]
        for noise in ("Value error, ", "Assertion failed, "):
            message = message.replace(noise, "")
        if err["type"] == "extra_forbidden":
            message = f"unknown field `{loc[-1]}`"
        msg, hint = _split(message)
        # Literal/union errors add the type tag to the loc (e.g. 'literal[...]' or 'int'); drop those.
        clean = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "str", "float", "bool", "function-after"))))
        problems.append(Problem(doc.file, doc.line_of(clean), field_path(clean), msg, hint or _hint(err, root, clean)))
    return _dedupe(problems)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set = set()
    out = []
    for p in problems:
        key = (p.file, p.line, p.field, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
