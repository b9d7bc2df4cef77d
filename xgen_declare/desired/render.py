"""Render a validated model into the exact argv + env that starts its backend.

Templates (templates/<family>.j2) run in Jinja's SandboxedEnvironment with StrictUndefined. Their
output format is fixed so that no value can add argv elements:

  * every ``{{ expression }}`` is passed through `finalize`, which JSON-encodes it: a string becomes one
    JSON string, a number its decimal text, a bool "true"/"false", a list one JSON string per item;
    None is an error (templates test for it with ``{% if x is not none %}``);
  * literal template text may only be whitespace (and Jinja comments);
  * the output is read back as a sequence of JSON strings, one argv element each.

So a value such as ``"a b; $(rm -rf /)\\n- --evil"`` stays exactly one argv element, and control characters
(newlines, NUL, terminal escapes: names.CONTROL_RE; a tab may pass) are rejected outright. No shell ever
sees the result.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from xgen_declare.backends.profile import VLLM, engine_of, profile
from xgen_declare.backends.modelpath import gguf_repo
from xgen_declare.inventory.dialect import dialect_for, help_flags
from xgen_declare.desired.demands import CPU_MOE_NOT_KNOWN, not_fetched
from xgen_declare.desired.pinning import pinning_env
from xgen_declare.config import Config
from xgen_declare.errors import FileRefused, Problem, RenderError
from xgen_declare.names import cut, escape_controls, first_control
from xgen_declare.inventory.model import Inventory
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.desired.ports import PortAssignment
from xgen_declare.manifests.request import ModelLoadRequest
from xgen_declare.desired.resolve import Resolved, resolve_model_path
from xgen_declare.desired import rpc
from xgen_declare.readers.bounded import MIB, read_text
from xgen_declare.processes.spec import Rendered
from xgen_declare.processes.rpc_workers import WorkerSpec

# xgen_declare/templates is a symlink to the top-level templates/ (so wheels ship them too)
SHIPPED_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _finalize(value: Any) -> str:
    if value is None:
        raise RenderError("a template expression produced None; guard it with {% if ... is not none %}")
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
        raise RenderError("undefined value in template")
    if isinstance(value, (list, tuple)):
        return " ".join(_finalize(v) for v in value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise RenderError(f"a template expression produced a {type(value).__name__}; only strings, numbers, "
                          "booleans and lists of them become argv elements")
    found = first_control(text)
    if found is not None:  # names.CONTROL_RE: newlines, NUL, terminal escapes (a tab may pass)
        raise RenderError(f"argv element {escape_controls(cut(text, 40))!r} contains a control character "
                          f"({found[1]} at position {found[0]}); remove it from the value the template renders")
    return json.dumps(text)


def _fail(message: str) -> None:
    raise RenderError(str(message))


def parse_argv(output: str, template: str) -> list[str]:
    decoder = json.JSONDecoder()
    argv: list[str] = []
    i, n = 0, len(output)
    while True:
        while i < n and output[i].isspace():
            i += 1
        if i >= n:
            return argv
        if output[i] != '"':
            line = output.count("\n", 0, i) + 1
            raise RenderError(f"template {template}: output line {line}: text outside {{{{ }}}} "
                              f"({output[i:i + 30]!r}); write literal flags as {{{{ \"--flag\" }}}}")
        value, i = decoder.raw_decode(output, i)
        argv.append(value)




@dataclass
class Entries:
    """What a stage beyond the models themselves (Ray nodes, remote RPC workers) adds to the desired
    state; build.py merges it, so no stage edits a shared Desired."""

    rendered: dict[str, Rendered] = field(default_factory=dict)
    problems: dict[str, list[Problem]] = field(default_factory=dict)  # replaces the name's problems
    withdrawn: set[str] = field(default_factory=set)  # models rendered earlier that must not run after all


class _SharedBytecode(jinja2.BytecodeCache):
    """Compiled templates shared by every Renderer of this process. Each reconcile pass builds a new
    Renderer (its Environment's own cache dies with it), and compiling llama-server.j2 took ~70 ms of
    every pass on a loaded 2-core host. Jinja keys a bucket by template name + file and checks the
    source's checksum, so an edited template is compiled again."""

    def __init__(self) -> None:
        self._store: dict[str, tuple[str, Any]] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        hit = self._store.get(bucket.key)
        if hit is not None and hit[0] == bucket.checksum:
            bucket.code = hit[1]

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._store[bucket.key] = (bucket.checksum, bucket.code)


_BYTECODE = _SharedBytecode()


MAX_TEMPLATE_BYTES = MIB


class _BoundedLoader(jinja2.FileSystemLoader):
    """jinja's FileSystemLoader, reading through readers.bounded: a template over 1 MiB, or an entry of the
    templates dir that is not a regular file (a FIFO, a link to a device), is a RenderError naming it
    (jinja's own loader read any size whole, and silently skipped a FIFO for the shipped template)."""

    def get_source(self, environment: jinja2.Environment, template: str):
        pieces = jinja2.loaders.split_template_path(template)
        for searchpath in self.searchpath:
            filename = os.path.join(searchpath, *pieces)
            try:
                source = read_text(filename, MAX_TEMPLATE_BYTES, what="a template")
            except FileNotFoundError:
                continue
            except FileRefused as exc:
                raise RenderError(f"{exc.path}: {exc.reason}", hint=exc.hint) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise RenderError(f"{filename}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
            mtime = os.path.getmtime(filename)
            return source, os.path.normpath(filename), lambda: _mtime(filename) == mtime
        raise jinja2.TemplateNotFound(template)


def _mtime(path: str) -> float | None:
    try:
        return os.path.getmtime(path)
    except OSError:
        return None


class Renderer:
    def __init__(self, config: Config, inventory: Inventory):
        self.config = config
        self.inventory = inventory
        search = []
        user_dir = config.resolve(config.templates_dir)
        if user_dir:
            search.append(user_dir)
        search.append(str(SHIPPED_TEMPLATES))
        self.env = SandboxedEnvironment(loader=_BoundedLoader(search), undefined=jinja2.StrictUndefined,
                                        finalize=_finalize, autoescape=False, keep_trailing_newline=True,
                                        bytecode_cache=_BYTECODE)
        self.env.globals["fail"] = _fail

    def argv(self, template: str, context: dict, field: str = "") -> list[str]:
        """The one way a template becomes a command (models, RPC workers, Ray nodes, export): render it,
        each {{ }} one argv element; any error (a user template may raise anything, call fail(), print
        text outside {{ }} or nothing at all) is a RenderError naming the template once, and `field`."""
        try:
            output = self.env.get_template(template).render(context)
        except RenderError as exc:
            raise RenderError(f"template {template}: {exc}", field=field) from None
        except jinja2.TemplateError as exc:
            where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
            raise RenderError(f"template {template}{where}: {exc}", field=field) from None
        except Exception as exc:  # never crash on a user's template: report it
            raise RenderError(f"template {template}: {type(exc).__name__}: {exc}", field=field) from None
        try:
            argv = parse_argv(output, template)
        except RenderError as exc:
            raise RenderError(str(exc), field=field) from None
        if not argv:
            raise RenderError(f"template {template} rendered an empty command", field=field)
        return argv

    def binary_for(self, backend: str, decl: ModelDecl) -> str:
        if decl.spec.binary:
            return decl.spec.binary
        if profile(backend).python_module:
            return self.config.resolve(self.config.python) or os.environ.get("XGEN_PYTHON") or _this_python()
        configured = self.config.binaries.get(backend)
        if configured:
            return self.config.resolve(configured)
        inv = self.inventory.backend(backend)
        if inv is not None and inv.binary:
            return inv.binary
        return profile(backend).default_binary or backend

    def render(self, res: Resolved, port: PortAssignment) -> Rendered:
        decl, spec, selection = res.decl, res.spec, res.selection
        if res.backend is None or res.profile is None:
            raise RenderError(selection.unavailable or "no backend", field="spec.backend")
        backend, prof = res.backend, res.profile
        family = prof.family
        binary = self.binary_for(backend, decl)
        dialect = dialect_for(backend, binary, self.inventory)
        warnings = []
        if selection.unavailable:
            warnings.append(selection.unavailable)
        env, pin_warnings = pinning_env(backend, spec.gpus, self.inventory)
        warnings.extend(pin_warnings)
        repo = res.hf_repo
        if repo is None and prof.python_module and gguf_repo(spec.model_path, spec.hf_file) is not None:
            warnings.append(f"{spec.model_path} is a HuggingFace repository: the daemon fetches it into the store "
                            "first and starts llama-cpp-python with --model on the fetched file (this preview "
                            "shows the repository)")
        if repo is not None and self.config.llama_cache_dir:  # where llama-server keeps what it downloads
            env["LLAMA_CACHE"] = self.config.resolve(self.config.llama_cache_dir)
        env.update(spec.env)
        secret_env = {}
        if spec.api_key_file and prof.api_key == "env":
            secret_env["VLLM_API_KEY"] = spec.api_key_file
        spec_data = spec.model_dump()
        spec_data["model_path"] = res.model_path
        if spec_data.get("tensor_split") == "auto":  # not resolved by placement: llama.cpp's default split
            spec_data["tensor_split"] = []
        spec_data["n_cpu_moe"] = self._n_cpu_moe(res, binary, warnings)
        context = {
            "name": decl.name, "spec": spec_data, "backend": backend, "binary": binary,
            "host": spec.host, "port": port.port, "dialect": dialect or "new",
            "embedding": spec.server_type == "embedding",
            "pooling": spec.pooling or ("mean" if spec.server_type == "embedding" else None),
            "served_names": served_names(decl.name, spec, decl.file, res.engine),
            "multi_gpu": bool(spec_data["tensor_split"]) or (spec.gpus is not None and len(spec.gpus) > 1),
            "log_buffers": self.config.placement.record_buffers,
            "rpc": [w.endpoint for w in spec.rpc_workers],
            "hf_repo": spec.model_path if repo is not None else None,
        }
        template = f"{family}.j2"
        argv = self.argv(template, context)
        if repo is not None and "--hf-repo" not in argv:
            raise RenderError(f"template {template} does not pass the repository on (no --hf-repo in its output); "
                              f"{spec.model_path} is downloaded by llama-server, see the shipped template",
                              field="spec.model_path")
        moe_flag = "--cpu-moe" if spec_data["n_cpu_moe"] == "all" else "--n-cpu-moe"
        if spec_data["n_cpu_moe"] and moe_flag not in argv:
            raise RenderError(f"template {template} does not pass n_cpu_moe on (no {moe_flag} in its output); "
                              "see the shipped template", field="spec.n_cpu_moe")
        plan_warnings: list[str] = []
        workers = self._rpc_workers(decl, prof.llama_server, binary, template, argv, warnings, plan_warnings)
        host_for_url = f"[{spec.host}]" if ":" in spec.host else spec.host
        return Rendered(
            name=decl.name, backend=backend, argv=argv, env=env, port=port.port, host=spec.host,
            endpoint=f"http://{host_for_url}:{port.port}/v1", readiness_path=prof.readiness_path,
            binary=binary, dialect=dialect, backend_reason=selection.explain(), port_source=port.source,
            ready_timeout=spec.ready_timeout, stop_grace=spec.stop_grace, enabled=spec.enabled,
            backend_note=selection.explain() if selection.noteworthy else None,
            binary_from_manifest=bool(spec.binary), gpus=spec.gpus, file=decl.file, secret_env=secret_env,
            warnings=warnings, plan_warnings=plan_warnings, workers=workers, placement=res.placement_values())

    def _n_cpu_moe(self, res: Resolved, binary: str, warnings: list[str]) -> int | str:
        """The --n-cpu-moe to render: the manifest's number or placement's choice for `auto`, or "all"
        (--cpu-moe); only for a llama-server whose --help lists the flag (a build that cannot be probed here
        gets it as asked)."""
        n = res.spec.n_cpu_moe
        if n == "auto" and not_fetched(res.spec):  # a hub source not read yet: never guessed
            warnings.append(CPU_MOE_NOT_KNOWN)
            return 0
        if n == "auto":  # not resolved: placement unknown (see the ledger's warning)
            warnings.append("n_cpu_moe: auto was not resolved (placement unknown): no --n-cpu-moe, every expert "
                            "weight stays with its layer; give a layer count to keep some in host memory")
            return 0
        if not n:
            return 0
        if res.profile is None or not res.profile.llama_server:
            raise RenderError(f"n_cpu_moe only applies to llama-server backends, and {res.backend} was chosen",
                              field="spec.n_cpu_moe", hint="remove n_cpu_moe or choose a llama-server backend")
        flag = "--cpu-moe" if n == "all" else "--n-cpu-moe"
        flags = help_flags(res.backend or "", binary)
        if flags is not None and flag not in flags:
            raise RenderError(f"{binary} has no {flag} (its --help does not list it; llama.cpp added it in "
                              "August 2025)", field="spec.n_cpu_moe",
                              hint="update llama.cpp, or remove n_cpu_moe")
        return n if n == "all" else int(n)

    def _rpc_workers(self, decl: ModelDecl, llama_server: bool, binary: str, template: str, argv: list[str],
                     warnings: list[str], plan_warnings: list[str]) -> list[WorkerSpec]:
        spec = decl.spec
        if not spec.rpc_workers:
            return []
        if not llama_server or "--rpc" not in argv:
            raise RenderError(f"template {template} does not pass rpc_workers on (no --rpc in its output)",
                              field="spec.rpc_workers")
        names = rpc.host_names(self.config)
        exposed = [f"rpc_workers[{i}]: {w}" for i, w in rpc.rpc_warnings(spec, self.config, names)]
        warnings.extend(exposed)
        plan_warnings.extend(exposed)
        worker_bin = rpc.worker_binary(self.config, binary)
        return rpc.render_workers(self.argv, decl.name, spec, worker_bin, self.config, names)



def served_names(name: str, spec: ModelLoadRequest, file: str | None, engine: str | None = None) -> list[str]:
    """The names a client may send in `model`: the model's name, its aliases and, for vLLM, the model id as
    it is on argv (what vLLM answers to without --served-model-name: `meta-llama/Llama-3.3-70B-Instruct`; for
    an hf:// source ORG/REPO, though it runs on the store's snapshot directory).
    vLLM answers to every one and reports the first. The router (router/table.py) routes the same names."""
    names = [name] + [a for a in spec.alias if a != name]
    if (engine or engine_of(spec.model_path, spec.backend, spec.hf_file)) == VLLM:
        src = spec.source  # a fetched hub source runs on its snapshot dir, and still answers to ORG/REPO
        model_id = src.repo if src is not None and src.kind == "hf" and src.repo else \
            resolve_model_path(spec.model_path, file)
        if model_id not in names:
            names.append(model_id)
    return names


def _this_python() -> str:
    import sys

    return sys.executable
