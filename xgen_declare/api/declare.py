"""API-written manifests: DIR/api/NAME.yaml, the only files the API creates or removes.

A load request becomes an ordinary Model manifest, validated by the same code as a hand-written one
(parsed back from the exact YAML text that is written), then written atomically (temp file + fsync +
rename). Anything that declares NAME elsewhere under the manifests dirs is hand-written and wins: the
API answers 409 naming that file; so does a request whose alias (or vLLM model id) another manifest
serves (the router would send one model's requests to the other). Relative model paths in requests are relative to DIR (rewritten
with a leading ../ because the file sits in DIR/api/).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from xgen_declare.desired.served import clashes
from xgen_declare.errors import Problem
from xgen_declare.manifests.load import load_paths, validate_document
from xgen_declare.manifests.request import NAME_RE, suggest_name
from xgen_declare.manifests.source import SourceError, implied_by_spec, parse_source
from xgen_declare.processes.state_store import atomic_write, fsync_dir
from xgen_declare.readers.yamlsource import MAX_FILE_BYTES, dump_exact, parse_documents
from xgen_declare.http.security import ApiProblem, is_loopback
from xgen_declare.readers.bounded import read_text
from xgen_declare.errors import FileRefused

API_DIR = "api"
EXEC_FIELDS = ("env", "extra_args", "binary")   # and trust_remote_code: true (`exec_fields`)
EXEC_WHY = "run code of the caller's choosing"
NETWORK_WHY = "make a server listen beyond this machine"
HEADER = ("# Written by the xgen-declare management API (POST /api/management/load); POST unload removes it.\n"
          "# To own this model by hand, move the file out of api/ and stop loading it through the API.\n")


def problem_json(p: Problem) -> dict:
    return {"field": p.field, "message": p.message, "hint": p.hint}


def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ApiProblem(422, "invalid model name", errors=[{
            "field": field, "message": "must match ^[a-z0-9][a-z0-9-]{0,62}$ (a DNS label: lowercase letters, "
            "digits and '-', starting with a letter or digit)", "hint": "e.g. qwen3-8b-q4-k-m"}])
    return name


def api_dir(root: str) -> Path:
    """DIR/api, refused when it is (or leads through) a symlink that leaves DIR."""
    d = Path(root) / API_DIR
    real_root = os.path.realpath(root)
    if d.is_symlink() or (d.exists() and os.path.dirname(os.path.realpath(d)) != real_root):
        raise ApiProblem(409, "the API's manifests dir api/ is a symlink; it must be a plain directory inside "
                         "the manifests dir")
    if d.exists() and not d.is_dir():
        raise ApiProblem(409, "api/ in the manifests dir is not a directory")
    return d


def owned_path(root: str, name: str) -> Path:
    path = api_dir(root) / f"{check_name(name)}.yaml"
    if path.is_symlink():
        raise ApiProblem(409, f"api/{name}.yaml is a symlink; the API only writes plain files")
    return path


def parse_load_body(body: Any, settings) -> tuple[str, dict]:
    """(name, spec) from the seed's ModelLoadRequest JSON plus an optional `name`. `settings`: the `api:`
    section (what the config lets a caller declare)."""
    if not isinstance(body, dict):
        raise ApiProblem(422, "the body must be a JSON object (the seed's ModelLoadRequest)")
    spec = dict(body)
    name = spec.pop("name", None)
    if name is None:
        path = spec.get("model_path")
        name = suggest_name(path) if isinstance(path, str) and path else "model"
    check_name(name)
    refuse_fields(spec, settings)
    refuse_source(spec, settings)
    path = spec.get("model_path")
    if isinstance(path, str) and not os.path.isabs(path) and (path.lower().endswith(".gguf") or
                                                            path.startswith(("./", "../"))):
        spec["model_path"] = "../" + path.removeprefix("./")
    return name, spec


def exec_fields(spec: dict) -> list[str]:
    """Fields set to something that runs code of the caller's choosing."""
    out = [f for f in EXEC_FIELDS if spec.get(f) not in (None, [], {}, "")]
    if spec.get("trust_remote_code") not in (None, False):  # the repository's own Python
        out.append("trust_remote_code")
    return out


def network_fields(spec: dict) -> list[str]:
    """Fields that make a server listen beyond loopback: the backend's `host`, an RPC worker's `bind`, a
    Ray cluster (its head and workers listen on the hosts' addresses, without authentication)."""
    out = []
    if isinstance(spec.get("host"), str) and not is_loopback(spec["host"]):
        out.append("host")
    workers = spec.get("rpc_workers")
    for i, w in enumerate(workers if isinstance(workers, list) else []):
        if isinstance(w, dict) and isinstance(w.get("bind"), str) and not is_loopback(w["bind"]):
            out.append(f"rpc_workers[{i}].bind")
    if spec.get("distributed") is not None:
        out.append("distributed")
    return out


def refuse_source(spec: dict, settings) -> None:
    """403 for a hub or URL source `api.allowed_sources` does not match (a shell pattern against the source
    as written; none by default), or one with a `token_file` (a file of this host sent to a hub). A
    `model_path` naming a hub repository is its hf:// source here (the store fetches it just the same), so
    `model_path: ORG/REPO` is matched as hf://ORG/REPO: no way around the allow-list."""
    value = spec.get("source")
    if value is None:
        src = implied_by_spec(spec)
        if src is None:
            return
    else:
        try:
            src = parse_source(value)
        except SourceError:
            return  # validation reports it, with the forms
    if not src.is_remote:
        return
    if src.token_file is not None:
        raise ApiProblem(403, "a source's token_file is refused through the API (it would send a file of this "
                         "host to a hub)", errors=[{"field": "spec.source.token_file", "message": "not allowed "
                                                   "through the API", "hint": "write a manifest file"}])
    patterns = list(getattr(settings, "allowed_sources", []) or [])
    if any(fnmatch.fnmatchcase(src.text, p) for p in patterns):
        return
    field, what = ("spec.source", src.text) if not src.implied else \
        ("spec.model_path", f"{spec['model_path']} (a hub repository, fetched into the store as {src.text})")
    raise ApiProblem(403, "this source is not in api.allowed_sources and is refused through the API",
                     errors=[{"field": field, "message": f"{what} is not allowed through the API",
                              "hint": "add a pattern that matches it to api.allowed_sources in xgen-declare.yaml "
                                      "(e.g. hf://ORG/*), or write a manifest file"}])


def refuse_fields(spec: dict, settings) -> None:
    """403 naming every field the config does not let a caller set (`api.allow_exec_fields`,
    `api.allow_network_bind`)."""
    refused = [] if settings.allow_exec_fields else [(f, "allow_exec_fields") for f in exec_fields(spec)]
    net = [] if settings.allow_network_bind else [(f, "allow_network_bind") for f in network_fields(spec)]
    if not refused and not net:
        return
    kinds = [k for k, found in ((EXEC_WHY, refused), (NETWORK_WHY, net)) if found]
    detail = f"these fields {' or '.join(kinds)}{',' if len(kinds) > 1 else ''} and are refused through the API"
    raise ApiProblem(403, detail, errors=[{"field": f"spec.{f}", "message": "not allowed through the API",
                                           "hint": f"set api.{key}: true in xgen-declare.yaml, or write a manifest "
                                                   "file"} for f, key in refused + net])


def manifest_text(name: str, spec: dict) -> str:
    """The file's text; it reads back as exactly this spec (`dump_exact`), else 422 naming the field."""
    data = {"apiVersion": "xgen/v1", "kind": "Model", "metadata": {"name": name}, "spec": spec}
    text, problems = dump_exact(data, f"{API_DIR}/{name}.yaml")
    if text is None:
        raise ApiProblem(422, "the request cannot be written as a manifest that reads back unchanged (nothing "
                         "was written)", model=name, errors=[problem_json(p) for p in problems])
    return HEADER + text


def validate_text(text: str, display: str) -> list[Problem]:
    """Exactly what the manifest loader would say about this file (minus cross-file rules)."""
    docs, problems = parse_documents(text, display)
    if problems:
        return problems
    out: list[Problem] = []
    for doc in docs:
        _, probs = validate_document(doc)
        out.extend(p for p in probs if p.severity == "error")
    return out


def declared_elsewhere(paths: list[str], name: str, own: Path) -> str | None:
    """The file (absolute) of another manifest declaring NAME, valid or not; None when only `own` does."""
    load = load_paths(paths)
    mine = os.path.realpath(own)
    for decl in load.models:
        if decl.name == name and os.path.realpath(decl.file) != mine:
            return decl.file
    for p in load.invalid_names.get(name, []):
        if p.file and os.path.realpath(p.file) != mine:
            return p.file
    return None


def served_elsewhere(paths: list[str], text: str, own: Path) -> tuple[str, str, str, str] | None:
    """(what, served name, other model, its file) when the manifest `text` (to be written at `own`) would
    serve a name, alias or model id that another manifest serves (desired/served.py): the router would send
    one of them the other's requests. None when it serves only names of its own."""
    docs, problems = parse_documents(text, str(own))
    decl = validate_document(docs[0])[0] if docs and not problems else None
    if decl is None:
        return None
    mine = os.path.realpath(own)
    others = [d for d in load_paths(paths).models if os.path.realpath(d.file) != mine and d.name != decl.name]
    for what, served, other in clashes(decl, others):
        return what, served, other.name, other.file
    return None


def read(path: Path) -> str | None:
    """The file's text (bounded: a FIFO or a device there is refused, never opened blocking or read
    whole), None when there is none."""
    try:
        return read_text(path, MAX_FILE_BYTES, what="a manifest")
    except FileNotFoundError:
        return None
    except FileRefused as exc:
        raise _cannot("read", path, ValueError(f"it {exc.reason}")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _cannot("read", path, exc) from None


def write(path: Path, text: str) -> bool:
    """Atomic write; False (nothing touched) when the file already holds exactly this text."""
    if read(path) == text:
        return False
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, text)
    except OSError as exc:
        raise _cannot("write", path, exc) from None
    return True


def remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError as exc:
        raise _cannot("remove", path, exc) from None
    fsync_dir(path.parent)


def _cannot(verb: str, path: Path, exc: Exception) -> ApiProblem:
    """503 with the cause: 'cannot write api/NAME.yaml: permission denied' (a read-only or full manifests dir
    is the host's state, not a bug)."""
    why = getattr(exc, "strerror", None) or str(exc)
    rel = f"{API_DIR}/{path.name}"
    return ApiProblem(503, f"cannot {verb} {rel}: {why[:1].lower()}{why[1:]}", model=path.stem, manifest=rel)


def relative(root: str, file: str | None) -> str | None:
    if file is None:
        return None
    try:
        rel = os.path.relpath(os.path.realpath(file), os.path.realpath(root))
    except ValueError:  # pragma: no cover
        return os.path.basename(file)
    return rel if not rel.startswith("..") else os.path.basename(file)
