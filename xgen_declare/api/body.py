"""Strict JSON request bodies for every write endpoint of the management API (`parse_body`).

Python's `json.loads` accepts what RFC 8259 does not, and what a manifest must never hold: `NaN`,
`Infinity` (and numbers like `1e999` that overflow to it), duplicate keys (the last one silently wins) and
any nesting its recursion limit allows (deeper: a RecursionError). Here:

  * `NaN` / `Infinity` / an overflowing number, and a duplicate key, answer 422 naming the JSON path;
  * nesting deeper than MAX_DEPTH answers 400 (a manifest needs about 4 levels).
"""

from __future__ import annotations

import json
import math
from typing import Any

from xgen_declare.http.security import ApiProblem

MAX_DEPTH = 32


class _Pairs(list):
    """A JSON object as the parser saw it: its (key, value) pairs in order, duplicates kept."""


class _NonFinite:
    def __init__(self, token: str):
        self.token = token


def _float(token: str) -> float | _NonFinite:
    value = float(token)
    return value if math.isfinite(value) else _NonFinite(token)


def parse_body(raw: bytes, empty_ok: bool = False) -> Any:
    """The JSON value of `raw`, as plain dicts, lists and finite numbers; ApiProblem otherwise."""
    if not raw.strip():
        if empty_ok:
            return {}
        raise ApiProblem(422, "the body is empty; send a JSON object")
    try:
        value = json.loads(raw, object_pairs_hook=_Pairs, parse_constant=_NonFinite, parse_float=_float)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno} column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiProblem(422, "the body is not valid JSON", errors=[{"field": "", "message": where or str(exc),
                                                                      "hint": ""}]) from None
    return _plain(value, "", 1)


def _too_deep() -> ApiProblem:
    return ApiProblem(400, f"the body nests deeper than {MAX_DEPTH} levels; a model manifest needs far fewer")


def _invalid(path: str, message: str, hint: str) -> ApiProblem:
    return ApiProblem(422, "the body is not valid JSON", errors=[{"field": path, "message": message, "hint": hint}])


def _plain(value: Any, path: str, depth: int) -> Any:
    """Dicts for `_Pairs`, checked; recursion bounded by MAX_DEPTH (not by the interpreter's limit)."""
    if isinstance(value, _NonFinite):
        raise _invalid(path, f"{value.token} is not a finite number", "send a finite number (JSON has no NaN or "
                       "Infinity)")
    if not isinstance(value, list):
        return value
    if depth > MAX_DEPTH:
        raise _too_deep()
    if not isinstance(value, _Pairs):
        return [_plain(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    out: dict[str, Any] = {}
    for key, v in value:
        where = f"{path}.{key}" if path else key
        if key in out:
            raise _invalid(where, f"duplicate key {key!r}", "give each key once")
        out[key] = _plain(v, where, depth + 1)
    return out
