"""What the manifests want from the store: each model's `spec.source` (hub or URL; a `model_path` naming a hub
repository counts as its hf:// source), with its file and line,
read without network and without the rest of the spec (`pull`, `store ls`, `store gc`: `validate` checks
the rest). Two manifests naming one file with different sha256 are an error naming both; a source's
`token_file` is read here (bounded, relative to the manifest's directory) and kept out of every repr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from xgen_declare.errors import FileRefused, Problem
from xgen_declare.manifests.load import discover
from xgen_declare.manifests.source import SOURCE_EXAMPLES, Source, SourceError, implied_by_spec, parse_source
from xgen_declare.readers.yamlsource import load_documents
from xgen_declare.readers.bounded import KIB
from xgen_declare.readers.secret import read_secret

__all__ = ["Wanted", "wanted_sources", "group_by_source", "TOKEN_LIMIT", "source_key", "read_token", "implied_token"]

TOKEN_LIMIT = 16 * KIB


@dataclass(frozen=True)
class Wanted:
    name: str
    file: str
    line: int
    source: Source
    token: str | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def source_key(source: Source) -> str:
    """One identity per source as written, minus the token file (the same file fetched with any token)."""
    data = source.to_json()
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "token_file"}
    return json.dumps(data, sort_keys=True)


def _file_key(source: Source) -> tuple | None:
    """What names one file, for the checksum conflict check (None: not a single file)."""
    if source.kind == "url":
        return ("url", source.url)
    if source.kind == "hf" and source.file is not None:
        return ("hf", source.repo, source.revision or "main", source.file)
    return None


def read_token(source: Source, manifest: str, line: int | None) -> tuple[str | None, Problem | None]:
    if source.token_file is None:
        return None, None
    try:
        path = Path(source.token_file).expanduser()
    except RuntimeError:  # ~user that does not exist
        path = Path(source.token_file)
    if not path.is_absolute():
        path = Path(manifest).parent / path
    field_name = "spec.source.token_file"
    try:
        token = read_secret(path, what="a token file", limit=TOKEN_LIMIT, allow_empty=True)
    except FileRefused as exc:
        return None, Problem(manifest, line, field_name, f"{exc.path}: {exc.reason}", exc.hint)
    if not token or any(ord(c) < 33 for c in token):
        return None, Problem(manifest, line, field_name, f"{path}: holds no token (empty, or spaces or control "
                             "characters inside)", "write the access token alone into that file")
    return token, None


def _from_document(doc, local: bool, tokens: bool) -> tuple[Wanted | None, list[Problem]]:
    data = doc.data if isinstance(doc.data, dict) else {}
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else f"(document {doc.index + 1})"
    if "source" not in spec:
        model_path = spec.get("model_path")
        if not isinstance(model_path, str) or not model_path:
            return None, []
        line = doc.line_of(("spec", "model_path"))
        implied = implied_by_spec(spec)
        if implied is not None:  # a hub repository id: fetched through the store like its hf:// source
            env = spec.get("env")
            return Wanted(name, doc.file, line, implied, implied_token(env) if tokens else None), []
        return (Wanted(name, doc.file, line, Source("path", model_path, path=model_path)) if local else None), []
    line = doc.line_of(("spec", "source"))
    try:
        source = parse_source(spec["source"])
    except SourceError as exc:
        return None, [Problem(doc.file, line, "spec.source", str(exc), f"forms: {SOURCE_EXAMPLES}")]
    if not source.is_remote:
        return (Wanted(name, doc.file, line, source) if local else None), []
    token, problem = read_token(source, doc.file, line) if tokens else (None, None)
    if problem is not None:
        return None, [problem]
    return Wanted(name, doc.file, line, source, token), []


def implied_token(env: object) -> str | None:
    """The token of a model_path naming a hub repository (an implied source has no token_file): the
    manifest's `env: {HF_TOKEN: ...}`, which its backend used when it downloaded the model itself."""
    token = env.get("HF_TOKEN") if isinstance(env, dict) else None
    return token.strip() if isinstance(token, str) and token.strip() else None


def _conflicts(items: list[Wanted]) -> list[Problem]:
    first: dict[tuple, Wanted] = {}
    out = []
    for w in items:
        key = _file_key(w.source)
        if key is None or w.source.sha256 is None:
            continue
        seen = first.setdefault(key, w)
        if seen.source.sha256 != w.source.sha256:
            out.append(Problem(w.file, w.line, "spec.source",
                               f"names the file of {seen.where} ({seen.name}) with another sha256 "
                               f"({w.source.sha256[:16]}, there {seen.source.sha256[:16]})",
                               "one file has one checksum: correct the wrong one (sha256sum FILE prints it)"))
    return out


def wanted_sources(paths: list[str], names: list[str] | None = None, *,
                   local: bool = False, tokens: bool = True) -> tuple[list[Wanted], list[Problem]]:
    """The hub and URL sources of the models in `paths` (only those `names`, when given), and the problems:
    a source that is no source, an unreadable token file, one file with two checksums, a name not found.
    `local`: local paths too (a path `source`, or `model_path`), as kind "path" (what `store gc` keeps);
    `tokens=False`: token files are not read (`store ls`, `store gc` fetch nothing)."""
    files, problems = discover(paths)
    items: list[Wanted] = []
    for path in files:
        docs, doc_problems = load_documents(path, what="a manifest")
        problems += doc_problems
        for doc in docs:
            item, found = _from_document(doc, local, tokens)
            problems += found
            if item is not None:
                items.append(item)
    problems += _conflicts(items)
    if names:
        known = {w.name for w in items}
        for n in names:
            if n not in known:
                problems.append(Problem("(command line)", None, "--model", f"no manifest in {', '.join(paths)} "
                                        f"names a model {n!r} with a hub or URL source",
                                        "check the name (xgen-declare validate DIR lists the models)"))
        items = [w for w in items if w.name in names]
    return items, problems


def group_by_source(items: list[Wanted]) -> list[list[Wanted]]:
    """Models naming the same source, together (in first-seen order): each source is fetched once."""
    groups: dict[str, list[Wanted]] = {}
    for w in items:
        groups.setdefault(source_key(w.source), []).append(w)
    return list(groups.values())
