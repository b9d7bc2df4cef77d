"""Load YAML with `yaml.safe_load` semantics, keeping the line of every key.

We compose the node graph with PyYAML's SafeLoader and build plain Python values ourselves, so that
  * every mapping key and sequence item remembers its line (errors point at the offending key),
  * duplicated keys, non-standard tags (``!!python/object``...) and non-scalar keys are errors,
  * aliases are expanded under a node budget, so an alias bomb is an error instead of a hang. The budget
    is per FILE, shared by its documents: a file of many small bombs (each under a per-document budget)
    once cost 80 s of CPU for 1 MiB; now a file stops at its first MAX_NODES nodes, ~50 ms of work.
Files are read through readers/bounded.py (a FIFO, a device, a link to /dev/zero: a Problem, never a
blocking open or an unbounded read). Nothing here raises for bad input: problems come back as `Problem`s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from xgen_declare.errors import FileRefused, Problem
from xgen_declare.readers.bounded import read_bytes

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 64

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "timestamp")
}

Path_ = tuple  # a path into a document: keys and list indices


@dataclass
class Document:
    file: str
    index: int
    line: int
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """Line of the deepest known prefix of `path` (the key itself when it exists)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


class _Invalid(Exception):
    def __init__(self, line: int, message: str, hint: str = ""):
        self.line, self.message, self.hint = line, message, hint


class _OverBudget(_Invalid):
    """The file's node budget is spent: its remaining documents are not built."""


class _Budget:
    """Nodes built so far in one file, across all its documents."""

    def __init__(self) -> None:
        self.nodes = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops composing a file past 2 * MAX_NODES nodes: the pure-Python composer took
    seconds for a 1 MiB flat list that the budget then refused at its 20 001st node. Each composed node
    is a key or is built at least once, and keys are at most half, so this refuses only what the build
    would refuse, before the time is spent."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.composed = 0

    def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
        self.composed += 1
        if self.composed > 2 * MAX_NODES:
            raise _OverBudget(self.peek_event().start_mark.line + 1, *_over_budget())
        return super().compose_node(parent, index)


def _over_budget() -> tuple[str, str]:
    return (f"file expands to more than {MAX_NODES} nodes (all its documents together)",
            "an alias bomb? write the values out instead of repeating anchors, or split the file")


class _Builder:
    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.lines: dict[Path_, int] = {}
        self.constructor = SafeConstructor()

    def build(self, node: Node, path: Path_ = (), depth: int = 0) -> Any:
        self.budget.nodes += 1
        line = node.start_mark.line + 1
        if self.budget.nodes > MAX_NODES:
            raise _OverBudget(line, *_over_budget())
        if depth > MAX_DEPTH:
            raise _Invalid(line, f"document nests deeper than {MAX_DEPTH} levels",
                           "a recursive alias? remove it")
        if isinstance(node, ScalarNode):
            return self._scalar(node, line)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                raise _Invalid(line, f"tag {node.tag!r} is not allowed", "use plain YAML lists")
            out = []
            for i, item in enumerate(node.value):
                self.lines.setdefault(path + (i,), item.start_mark.line + 1)
                out.append(self.build(item, path + (i,), depth + 1))
            return out
        if isinstance(node, MappingNode):
            if node.tag != _MAP_TAG:
                raise _Invalid(line, f"tag {node.tag!r} is not allowed", "use plain YAML mappings")
            try:
                self.constructor.flatten_mapping(node)  # YAML merge keys (<<)
            except ConstructorError as exc:
                raise _Invalid(line, _yaml_message(exc)) from None
            out: dict = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, ScalarNode):
                    raise _Invalid(key_line, "mapping keys must be plain scalars")
                key = self._scalar(key_node, key_line)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise _Invalid(key_line, f"key {key!r} has an unsupported type")
                if key in out:
                    raise _Invalid(key_line, f"duplicated key {key!r}",
                                   f"it is already set on line {self.lines.get(path + (key,), '?')}; keep one")
                self.lines[path + (key,)] = key_line
                out[key] = self.build(value_node, path + (key,), depth + 1)
            return out
        raise _Invalid(line, "unsupported YAML node")  # pragma: no cover

    def _scalar(self, node: ScalarNode, line: int) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise _Invalid(line, f"tag {node.tag!r} is not allowed",
                           "only plain strings, numbers, booleans and null")
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError, OverflowError) as exc:
            raise _Invalid(line, f"bad scalar {node.value[:40]!r}: {exc}") from None


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"unacceptable character #x{exc.character:04x}" if isinstance(exc.character, int) else str(exc.reason)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"{context}: {problem}" if context and problem else str(problem)


def _yaml_line(exc: yaml.YAMLError, text: str = "") -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(exc, "position", None)  # ReaderError: bad character
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else None


def read_text(path: Path, display: str, max_bytes: int = MAX_FILE_BYTES,
              what: str = "a YAML file") -> tuple[str | None, Problem | None]:
    """The file's text, or the Problem that says why not: a FIFO, a device or a directory (not opened
    blocking), a file over `max_bytes` (not read whole), missing or unreadable, not UTF-8."""
    try:
        data = read_bytes(path, max_bytes, what=what)
    except FileRefused as exc:
        hint = "split it into smaller files" if "limit" in exc.reason else "replace it with a regular file or remove it"
        return None, Problem(display, None, "", f"file not read: it {exc.reason}", hint)
    except OSError as exc:
        return None, Problem(display, None, "", f"cannot read file: {exc.strerror or exc}",
                             "check that it exists and is readable")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, Problem(display, line, "", "file is not valid UTF-8", "save it as UTF-8")


_PARSED: dict[tuple[str, str], tuple[list[Document], list[Problem]]] = {}
_PARSED_MAX_CHARS = 16 * 1024 * 1024
_parsed_chars = 0


def parse_documents(text: str, display: str) -> tuple[list[Document], list[Problem]]:
    """Parse every YAML document of `text`; empty documents are skipped.

    Every reconcile pass reads every manifest, and parsing was most of a pass (150 of 200 ms for 20
    manifests on a loaded 2-core host), so results are kept per (name, exact text): an unchanged file
    is not parsed again, an edited one is. Each caller gets its own copy."""
    global _parsed_chars
    key = (display, text)
    hit = _PARSED.get(key)
    if hit is None:
        hit = _parse_documents(text, display)
        if _parsed_chars + len(text) > _PARSED_MAX_CHARS:
            _PARSED.clear()
            _parsed_chars = 0
        _PARSED[key] = hit
        _parsed_chars += len(text)
    return copy.deepcopy(hit)


def _parse_documents(text: str, display: str) -> tuple[list[Document], list[Problem]]:
    docs: list[Document] = []
    problems: list[Problem] = []
    loader = None
    index = 0
    budget = _Budget()
    try:
        loader = _Loader(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover
                break
            builder = _Builder(budget)
            line = node.start_mark.line + 1
            try:
                data = builder.build(node)
            except _OverBudget as bad:
                problems.append(Problem(display, bad.line, "", bad.message, bad.hint))
                break
            except _Invalid as bad:
                problems.append(Problem(display, bad.line, "", bad.message, bad.hint))
            else:
                if data is not None:
                    docs.append(Document(display, index, line, data, builder.lines))
            index += 1
    except _OverBudget as bad:  # from the composer
        problems.append(Problem(display, bad.line, "", bad.message, bad.hint))
    except yaml.YAMLError as exc:
        problems.append(Problem(display, _yaml_line(exc, text), "", f"YAML syntax error: {_yaml_message(exc)}",
                                "fix the YAML syntax at this line"))
    except RecursionError:
        problems.append(Problem(display, None, "", "YAML nests too deeply", "flatten the document"))
    finally:
        if loader is not None:
            loader.dispose()
    return docs, problems


def load_documents(path: Path, display: str | None = None,
                   what: str = "a YAML file") -> tuple[list[Document], list[Problem]]:
    display = display or str(path)
    text, problem = read_text(path, display, what=what)
    if problem:
        return [], [problem]
    return parse_documents(text, display)


def dump_exact(data: Any, display: str) -> tuple[str | None, list[Problem]]:
    """YAML text that `parse_documents` reads back as exactly `data` (same strings, same types), or the
    problem naming the first value that does not survive. PyYAML writes some characters raw that a YAML
    reader then folds (U+0085 NEL in a quoted scalar comes back as a space): readable UTF-8 is tried
    first, then every non-ASCII character escaped."""
    where: tuple = ()
    for allow_unicode in (True, False):
        try:
            text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=allow_unicode)
            text.encode("utf-8")  # what the file will hold (a lone surrogate cannot be written)
        except (yaml.YAMLError, UnicodeEncodeError, RecursionError):
            continue
        docs, problems = parse_documents(text, display)
        back = docs[0].data if len(docs) == 1 and not problems else None
        found = first_difference(data, back)
        if found is None:
            return text, []
        where = found
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" if i else str(p) for i, p in enumerate(where))
    return None, [Problem(display, None, field, "this value cannot be written to YAML and read back unchanged",
                          "remove control characters and unpaired surrogates from it")]


def first_difference(a: Any, b: Any, path: Path_ = ()) -> Path_ | None:
    """The path of the first place where `a` and `b` differ in value or type (True is not 1); None if equal."""
    if type(a) is not type(b):
        return path
    if isinstance(a, dict):
        if list(a) != list(b):
            return path
        for key in a:
            found = first_difference(a[key], b[key], path + (key,))
            if found is not None:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, path + (i,))
            if found is not None:
                return found
        return None
    return None if a == b else path
