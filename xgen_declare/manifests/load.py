"""Discover manifest files and load them into validated `ModelDecl`s, collecting every problem.

Discovery: PATHs are files or directories; directories are read recursively for *.yaml / *.yml.
Hidden entries (incl. Kubernetes ConfigMap `..data` dirs), editor swap/backup files, the config
file (xgen-declare.yaml) and a state dir are skipped; so are, each with a Problem, links that lead
outside the directory and FIFOs/sockets/devices. A file may hold several documents, one model each.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from xgen_declare.config import CONFIG_NAMES
from xgen_declare.errors import Problem
from xgen_declare.names import is_model_name
from xgen_declare.readers.bounded import kind_of
from xgen_declare.readers.selector import disjoint
from xgen_declare.manifests.overrides import check_overrides
from xgen_declare.manifests.request import Manifest, ModelLoadRequest
from xgen_declare.readers.validation_errors import did_you_mean, problems_from_validation
from xgen_declare.readers.yamlsource import Document, load_documents

_BACKUP_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".bak", ".orig", ".tmp", ".rej")


@dataclass
class ModelDecl:
    name: str
    spec: ModelLoadRequest
    file: str
    line: int
    labels: dict[str, str] = field(default_factory=dict)
    doc: Document | None = field(default=None, repr=False)

    def line_of(self, *path: str | int) -> int:
        return self.doc.line_of(("spec",) + path) if self.doc else self.line


@dataclass
class LoadResult:
    models: list[ModelDecl] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # names whose manifest exists but is invalid (the reconciler keeps their last good process)
    invalid_names: dict[str, list[Problem]] = field(default_factory=dict)
    # files that could not be read or parsed at all (names unknown)
    broken_files: set[str] = field(default_factory=set)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def is_manifest_name(name: str) -> bool:
    if name.startswith((".", "#")) or name.endswith(_BACKUP_SUFFIXES) or name in CONFIG_NAMES:
        return False
    return name.endswith((".yaml", ".yml"))


def discover(paths: list[str]) -> tuple[list[Path], list[Problem]]:
    """The manifest files under PATHs, and a Problem for each entry skipped (see `_walk`). A path given
    itself is taken whatever it is: the bounded read refuses a FIFO or a device with a Problem."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found, skipped = _walk(p)
            files.extend(found)
            problems.extend(skipped)
        elif os.path.lexists(p):
            files.append(p)
        else:
            problems.append(Problem(raw, None, "", "no such file or directory", "check the path"))
    seen: set[str] = set()
    unique = []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


# A state dir (processes/state_store.py) holds these; one inside the manifests dir is not walked.
STATE_DIR_MARKERS = ("daemon.lock", "daemon.json")


def is_state_dir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "models")) and \
        any(os.path.isfile(os.path.join(path, m)) for m in STATE_DIR_MARKERS)


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _walk(root: Path) -> tuple[list[Path], list[Problem]]:
    """Manifest files under `root`, never leaving it: a symlinked dir or file whose real path lies outside
    is skipped with a warning (a link to / was walked whole on every pass); links that stay inside (the
    Kubernetes ConfigMap layout: m.yaml -> ..data/m.yaml, ..data -> ..2026_01_01_x) are followed. A FIFO,
    socket or device named *.yaml is an error and never opened; a state dir inside is not walked."""
    out: list[Path] = []
    problems: list[Problem] = []
    root_real = os.path.realpath(root)
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited or (dirpath != str(root) and is_state_dir(dirpath)):  # a link loop; a state dir
            dirnames[:] = []
            continue
        visited.add(real)
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            target = os.path.realpath(os.path.join(dirpath, d))
            if _inside(target, root_real):
                keep.append(d)
            else:
                problems.append(_outside(os.path.join(dirpath, d), "directory", target))
        dirnames[:] = keep
        for name in sorted(filenames):
            if is_manifest_name(name):
                path, problem = _entry(Path(dirpath) / name, root_real)
                if path is not None:
                    out.append(path)
                if problem is not None:
                    problems.append(problem)
    return out, problems


def _entry(path: Path, root_real: str) -> tuple[Path | None, Problem | None]:
    """A file the walk found: taken, or skipped with the Problem that says why."""
    try:
        mode = os.stat(path).st_mode  # follows links; never blocks, even on a FIFO
    except OSError:
        return path, None  # a dangling link or a race: the read reports it
    if not stat.S_ISREG(mode):
        return None, Problem(str(path), None, "", f"is {kind_of(mode)}, not a regular file: skipped (never opened)",
                             "replace it with a regular manifest file or remove it")
    target = os.path.realpath(path)
    if not _inside(target, root_real):
        return None, _outside(str(path), "file", target)
    return path, None


def _outside(path: str, what: str, target: str) -> Problem:
    return Problem(path, None, "", f"symlinked {what} leads outside the manifests directory (to {target}): "
                   "skipped", "copy it into the directory, or give its path on the command line",
                   severity="warning")


def load_paths(paths: list[str]) -> LoadResult:
    files, problems = discover(paths)
    result = LoadResult(problems=problems, files=[str(f) for f in files])
    # a skipped entry is a file whose models are unknown: a model it used to declare keeps its process
    result.broken_files.update(p.file for p in problems if p.file not in paths)
    for f in files:
        _load_file(f, result)
    _check_across(result)
    return result


def _load_file(path: Path, result: LoadResult) -> None:
    docs, problems = load_documents(path, what="a manifest")
    result.problems.extend(problems)
    if problems:
        result.broken_files.add(str(path))
    for doc in docs:
        decl, doc_problems = validate_document(doc)
        result.problems.extend(doc_problems)
        if decl is not None:
            result.models.append(decl)
        elif isinstance(doc.data, dict) and isinstance(doc.data.get("metadata"), dict) and \
                is_model_name(name := doc.data["metadata"].get("name")):
            result.invalid_names.setdefault(name, []).extend(doc_problems)
        else:  # no name, or one that is not a model name: it names no model (never a state record)
            result.broken_files.add(str(path))


def validate_document(doc: Document) -> tuple[ModelDecl | None, list[Problem]]:
    data = doc.data
    if not isinstance(data, dict):
        return None, [Problem(doc.file, doc.line, "", f"document is a {type(data).__name__}, not a mapping",
                              "each document must be a Model manifest with apiVersion, kind, metadata and spec")]
    if data.get("apiVersion") != "xgen/v1" or data.get("kind") != "Model":
        field_name = "apiVersion" if data.get("apiVersion") != "xgen/v1" else "kind"
        got = data.get(field_name)
        return None, [Problem(doc.file, doc.line_of((field_name,)), field_name,
                              f"unknown {field_name} {got!r}" if got is not None else f"missing {field_name}",
                              "use apiVersion: xgen/v1 and kind: Model")]
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        return None, problems_from_validation(exc, doc, Manifest)
    if overridden := check_overrides(doc, manifest.spec):
        return None, overridden
    return ModelDecl(name=manifest.metadata.name, spec=manifest.spec, file=doc.file, line=doc.line,
                     labels=dict(manifest.metadata.labels), doc=doc), []


def _check_across(result: LoadResult) -> None:
    """Rules across documents: unique names, unique explicit ports (unless spec.hosts keeps the models on
    different hosts: `disjoint`). Offenders become invalid."""
    by_name: dict[str, list[ModelDecl]] = defaultdict(list)
    by_port: dict[int, list[ModelDecl]] = defaultdict(list)
    for m in result.models:
        by_name[m.name].append(m)
        if m.spec.port is not None:
            by_port[m.spec.port].append(m)
    bad: dict[int, list[Problem]] = defaultdict(list)
    for name, decls in by_name.items():
        if len(decls) > 1 or name in result.invalid_names:
            where = ", ".join(f"{d.file}:{d.line}" for d in decls)
            for d in decls:
                bad[id(d)].append(Problem(d.file, d.doc.line_of(("metadata", "name")) if d.doc else d.line,
                                          "metadata.name", f"name {name!r} is declared more than once ({where})",
                                          "give each model a unique name"))
    for port, decls in by_port.items():
        for d in decls:  # models whose spec.hosts no host matches at once may share a port
            clash = [o for o in decls if o is d or not disjoint(o.spec.hosts, d.spec.hosts)]
            if len(clash) > 1:
                names = ", ".join(o.name for o in clash)
                bad[id(d)].append(Problem(d.file, d.line_of("port"), "spec.port",
                                          f"port {port} is claimed by several models ({names})",
                                          "give each model its own port or omit port to get one assigned"))
    if not bad:
        return
    keep = []
    for m in result.models:
        if id(m) in bad:
            result.problems.extend(bad[id(m)])
            result.invalid_names.setdefault(m.name, []).extend(bad[id(m)])
        else:
            keep.append(m)
    result.models = keep


__all__ = ["ModelDecl", "LoadResult", "load_paths", "discover", "validate_document", "did_you_mean"]
