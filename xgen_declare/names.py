"""Model names: the one rule, checked where a name comes in and again where it becomes a file name.

A model name is a DNS label as the manifests define it: lowercase letters, digits and '-', starting with
a letter or digit, at most 63 characters, matched against the WHOLE string (`$` alone would let a
trailing newline through). The name becomes STATE/models/NAME.json, STATE/logs/NAME.log and
DIR/api/NAME.yaml, so nothing else (a '/', '..', a NUL byte, a newline, 250 characters) may reach them:
  * manifests.py   a document whose metadata.name breaks the rule names no model: its file is broken
  * state_store.py refuses such a name with StateError (defence in depth)
  * api/, cli/     refuse it before anything is looked up
Names derived from a model's (Ray nodes, RPC worker entries) must follow the same rule.

Text that reaches an operator's terminal (a backend's log lines in `logs`, `render -o shell`) may carry
control characters: an alias "\x1b]0;pwned\x07" retitles the terminal, CSI sequences rewrite what is
shown. CONTROL_RE is the one set (C0 but tab, DEL, C1): manifest and API values that become argv refuse
it (manifests/fields.py, desired/render.py); printed text is passed through `escape_controls`; `cut`
shortens a long value quoted in a message.

A git commit id (a pinned revision, a store snapshot, a source tree) is checked by `is_commit_id`, the
whole string: 40 lowercase hex digits.
"""

from __future__ import annotations

import re
from typing import Iterable

from xgen_declare.errors import ModelNotFound

RULE = "^[a-z0-9][a-z0-9-]{0,62}$"
NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
RULE_TEXT = f"a model name is a DNS label: {RULE} (lowercase letters, digits and '-', starting with a letter " \
            "or digit, at most 63 characters)"


CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0 except tab, DEL, C1


def first_control(text: str) -> tuple[int, str] | None:
    """(position, escaped) of the first control character in `text`, or None."""
    m = CONTROL_RE.search(text)
    return None if m is None else (m.start(), escape_controls(m.group()))


def escape_controls(text: str) -> str:
    """`text` with every control character (CONTROL_RE) written as \\xHH, \\n, \\r: safe to print."""
    return CONTROL_RE.sub(_escape_one, text)


def _escape_one(m: re.Match) -> str:
    c = m.group()
    return {"\n": "\\n", "\r": "\\r"}.get(c) or f"\\x{ord(c):02x}"


def cut(text: str, limit: int = 80) -> str:
    """`text` shortened to `limit` characters for a message ('...' and the count of those cut)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def quote_cut(text: str, limit: int = 64) -> str:
    """`text` quoted for a message (repr: control characters escaped), cut after `limit` characters: a
    250-character name is not repeated whole in every line that refuses it."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text) - limit} more characters)"


COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def is_commit_id(value: object) -> bool:
    """A full git commit id (SHA-1), the whole string."""
    return isinstance(value, str) and COMMIT_RE.fullmatch(value) is not None


def is_model_name(value: object) -> bool:
    return isinstance(value, str) and NAME_RE.match(value) is not None


def check_model_names(names: Iterable[str]) -> None:
    """For verbs given NAMEs (logs, restart, down, up, status): refuse one that cannot be a model."""
    for name in names:
        if not is_model_name(name):
            raise ModelNotFound(f"{quote_cut(name)} is not a model name ({RULE_TEXT})")


def derived_name_error(model: str, derived: str, what: str) -> tuple[str, str] | None:
    """(message, hint) when a name derived from a valid model name (its Ray node, an RPC worker entry)
    breaks the rule; only its length can. None when it is fine."""
    if is_model_name(derived):
        return None
    room = 63 - (len(derived) - len(model))
    return (f"its {what} would be named {derived}, which is not a model name (at most 63 characters)",
            f"shorten metadata.name to at most {room} characters")
