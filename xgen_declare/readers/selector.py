"""Which hosts a manifest is for: a label selector with Kubernetes semantics, pure (no I/O).

    spec:
      hosts:
        matchLabels: {gpu.vendor: amd}
        matchExpressions:
          - {key: gpu.model, operator: In, values: [MI300X, MI325X]}
          - {key: gpu.memory_gib, operator: Gt, values: ["40"]}
          - {key: maintenance, operator: DoesNotExist}

As in Kubernetes (apimachinery `labels.Selector`, metav1.LabelSelector): every requirement must hold (AND);
`matchLabels: {k: v}` is `k In [v]`; an empty selector matches every host; `NotIn` and `DoesNotExist`
match a host without the key; `Exists` / `DoesNotExist` take no values, `In` / `NotIn` at least one,
`Gt` / `Lt` exactly one number, and a host whose value is not a number does not match them. One
difference: `Gt` / `Lt` compare decimals too (`gpu.memory_gib: 23.5`), Kubernetes only integers.

Label values are strings; YAML scalars (7, true, 23.5) are taken as the text YAML wrote, so
`gpu.count: 2` and `gpu.count: "2"` are the same label. `parse_selector` reports every problem at once
as (field, message, hint) triples; the caller adds the file and line.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["OPERATORS", "Requirement", "Selector", "check_label_key", "check_label_value", "disjoint", "label_text",
           "parse_selector"]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
MAX_VALUE = 253
Issue = tuple[str, str, str]  # field, message, hint


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.operator == "In":
            return has and value in self.values
        if self.operator == "NotIn":
            return not has or value not in self.values
        if self.operator == "Exists":
            return has
        if self.operator == "DoesNotExist":
            return not has
        if not has or not _NUMBER.fullmatch(value or ""):
            return False
        bound = float(self.values[0])
        return float(value) > bound if self.operator == "Gt" else float(value) < bound

    def describe(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {self.operator}"
        if self.operator in ("Gt", "Lt"):
            return f"{self.key} {'>' if self.operator == 'Gt' else '<'} {self.values[0]}"
        return f"{self.key} {self.operator} [{', '.join(self.values)}]"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def describe(self) -> str | None:
        """"gpu.vendor In [amd], gpu.memory_gib > 40"; None for the empty selector (every host)."""
        return ", ".join(r.describe() for r in self.requirements) or None

    def to_json(self) -> dict:
        """The canonical form (every requirement as an expression), which `parse_selector` reads back."""
        return {"matchExpressions": [{"key": r.key, "operator": r.operator, "values": list(r.values)}
                                     for r in self.requirements]}

    def mismatch(self, labels: Mapping[str, str]) -> str | None:
        """Why this host is not selected (None when it is): the first requirement that fails, with the
        host's value, e.g. "gpu.vendor In [amd] (this host: nvidia)"."""
        for r in self.requirements:
            if not r.matches(labels):
                have = labels.get(r.key)
                return f"{r.describe()} (this host: {'no ' + r.key + ' label' if have is None else have})"
        return None


def disjoint(a: Selector | None, b: Selector | None) -> bool:
    """True when no host can match both selectors (None: every host), so that two models for different hosts
    may claim the same port: some key on which a requirement of `a` and one of `b` cannot both hold
    (In [x] / In [y]; In / NotIn of all its values; a requirement on a label / DoesNotExist; Gt / Lt, In
    values beyond a bound). Conservative: False whenever that is not certain."""
    if a is None or b is None:
        return False
    return any(_exclusive(x, y) or _exclusive(y, x) for x in a.requirements for y in b.requirements
               if x.key == y.key)


def _exclusive(x: Requirement, y: Requirement) -> bool:
    needs_label = ("In", "Exists", "Gt", "Lt")
    if x.operator in needs_label and y.operator == "DoesNotExist":
        return True
    if x.operator == "In" and y.operator == "In":
        return not set(x.values) & set(y.values)
    if x.operator == "In" and y.operator == "NotIn":
        return set(x.values) <= set(y.values)
    if x.operator == "In" and y.operator in ("Gt", "Lt"):
        return not any(Requirement(y.key, y.operator, y.values).matches({y.key: v}) for v in x.values)
    if x.operator == "Gt" and y.operator == "Lt":  # value > x and value < y: none when y <= x
        return float(y.values[0]) <= float(x.values[0])
    return False


def checked_labels(labels: object) -> object:
    """A `labels:` mapping (config `host.labels`, an inventory's `labels:`) as validated text values;
    ValueError naming the bad key or value with an example. Not a mapping: returned as is (the model's
    own type check reports it)."""
    if not isinstance(labels, dict):
        return labels
    for key, value in labels.items():
        bad = check_label_key(key) or check_label_value(value)
        if bad:
            raise ValueError(f"{bad}; e.g. labels: {{site: lab-2, tier: prod}}")
    return {key: label_text(value) for key, value in labels.items()}


def label_text(value: object) -> str | None:
    """A YAML scalar as label text (True -> "true", 7 -> "7"); None for a mapping, a list or null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


def check_label_key(key: object) -> str | None:
    """Why `key` is no label key, or None."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return (f"{key!r} is not a label key (letters, digits and . _ / -, starting and ending with a letter "
                "or digit, at most 253 characters)")
    return None


def check_label_value(value: object) -> str | None:
    """Why `value` is no label value, or None."""
    text = label_text(value)
    if text is None:
        return f"{value!r} is not a label value (a string, a number or true/false)"
    if len(text) > MAX_VALUE or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return f"{text[:40]!r} is not a label value (at most {MAX_VALUE} characters, no control characters)"
    return None


def parse_selector(data: object, field: str = "spec.hosts") -> tuple[Selector | None, list[Issue]]:
    """A Selector from `{matchLabels, matchExpressions}`; None and every problem when it is not one."""
    if data is None:
        return Selector(), []
    if not isinstance(data, Mapping):
        return None, [(field, "must be a mapping", "e.g. {matchLabels: {gpu.vendor: amd}}")]
    issues: list[Issue] = []
    for extra in sorted(set(map(str, data)) - {"matchLabels", "matchExpressions"}):
        close = difflib.get_close_matches(extra, ["matchLabels", "matchExpressions"], n=1, cutoff=0.6)
        issues.append((f"{field}.{extra}", "unknown field",
                       f"did you mean `{close[0]}`?" if close else "use matchLabels and/or matchExpressions"))
    reqs = _match_labels(data.get("matchLabels"), f"{field}.matchLabels", issues)
    reqs += _match_expressions(data.get("matchExpressions"), f"{field}.matchExpressions", issues)
    return (None, issues) if issues else (Selector(tuple(reqs)), [])


def _match_labels(data: object, field: str, issues: list[Issue]) -> list[Requirement]:
    if data is None:
        return []
    if not isinstance(data, Mapping):
        issues.append((field, "must be a mapping of label to value", "e.g. {gpu.vendor: amd, gpu.count: 2}"))
        return []
    out = []
    for key, value in data.items():
        bad = check_label_key(key) or check_label_value(value)
        if bad:
            issues.append((f"{field}.{key}", bad, "e.g. gpu.vendor: amd"))
        else:
            out.append(Requirement(key, "In", (label_text(value),)))
    return out


def _match_expressions(data: object, field: str, issues: list[Issue]) -> list[Requirement]:
    if data is None:
        return []
    if not isinstance(data, list):
        issues.append((field, "must be a list", "e.g. [{key: gpu.model, operator: In, values: [MI300X]}]"))
        return []
    out = []
    for i, expr in enumerate(data):
        where = f"{field}[{i}]"
        if not isinstance(expr, Mapping):
            issues.append((where, "must be a mapping", "e.g. {key: gpu.model, operator: In, values: [MI300X]}"))
            continue
        req = _expression(expr, where, issues)
        if req is not None:
            out.append(req)
    return out


def _expression(expr: Mapping, where: str, issues: list[Issue]) -> Requirement | None:
    before = len(issues)
    for extra in sorted(set(map(str, expr)) - {"key", "operator", "values"}):
        issues.append((f"{where}.{extra}", "unknown field", "an expression has key, operator and values"))
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values")
    if key is None:
        issues.append((f"{where}.key", "missing", "add `key`, e.g. key: gpu.vendor"))
    elif (bad := check_label_key(key)) is not None:
        issues.append((f"{where}.key", bad, "e.g. key: gpu.vendor"))
    if op not in OPERATORS:
        close = [o for o in OPERATORS if isinstance(op, str) and o.lower() == op.lower()]
        close = close or difflib.get_close_matches(str(op), OPERATORS, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(OPERATORS)}"
        what = "missing" if op is None else f"unknown operator {op!r}"
        issues.append((f"{where}.operator", what, hint))
        return None
    texts = _values(values, f"{where}.values", issues)
    if texts is None:
        return None
    if op in ("Exists", "DoesNotExist") and texts:
        issues.append((f"{where}.values", f"{op} takes no values", "remove values"))
    elif op in ("In", "NotIn") and not texts:
        issues.append((f"{where}.values", f"{op} needs at least one value", "e.g. values: [MI300X]"))
    elif op in ("Gt", "Lt"):
        if len(texts) != 1 or not _NUMBER.fullmatch(texts[0]) or not math.isfinite(float(texts[0])):
            issues.append((f"{where}.values", f"{op} needs exactly one number, got {list(texts)}",
                           'e.g. values: ["40"]'))
    return None if len(issues) > before else Requirement(key, op, texts)


def _values(values: object, field: str, issues: list[Issue]) -> tuple[str, ...] | None:
    if values is None:
        return ()
    if not isinstance(values, list):
        issues.append((field, "must be a list", "e.g. values: [MI300X, MI325X]"))
        return None
    texts = []
    for v in values:
        bad = check_label_value(v)
        if bad:
            issues.append((field, bad, "e.g. values: [MI300X]"))
            return None
        texts.append(label_text(v))
    return tuple(texts)
