"""Desired state: manifests + config + inventory (+ ports held in the state) -> rendered models.

Shared by `render`, `plan`, `apply` and the daemon, so they all see the same commands. A model whose
manifest is invalid or that cannot be rendered gets a problem, never an exception: the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backends.selection import select_backend
from .config import Config
from .errors import Problem, RenderError
from .inventory.model import Inventory
from .manifests import LoadResult, ModelDecl, load_paths
from .ports import assign_ports
from .render import Rendered, Renderer


@dataclass
class Desired:
    load: LoadResult
    rendered: dict[str, Rendered] = field(default_factory=dict)
    # model name -> problems that stop it from being rendered (invalid manifest, render error, ...)
    problems: dict[str, list[Problem]] = field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        return set(self.rendered) | set(self.problems)


def host_problems(decl: ModelDecl, inventory: Inventory) -> list[Problem]:
    """Checks that need the host: used by `validate --inventory` and before starting."""
    out = []
    spec = decl.spec
    sel = select_backend(spec, inventory)
    if sel.unavailable:
        out.append(Problem(decl.file, decl.line_of("backend"), "spec.backend", sel.unavailable,
                           "install the backend, fix `binaries:` in xgen-declare.yaml, or pick another backend"))
    known = {g.index for g in inventory.gpus}
    for pos, index in enumerate(spec.gpus or []):
        if index not in known:
            have = ", ".join(str(i) for i in sorted(known)) or "none"
            out.append(Problem(decl.file, decl.line_of("gpus", pos), f"spec.gpus[{pos}]",
                               f"GPU {index} does not exist on this host (GPUs: {have})",
                               "see `xgen-declare gpus`"))
    return out


def build_desired(paths: list[str], config: Config, inventory: Inventory, *,
                  held_ports: dict[str, int] | None = None, preview: bool = False,
                  taken_ports: set[int] | None = None, check_host: bool = False) -> Desired:
    load = load_paths(paths)
    desired = Desired(load=load)
    for name, probs in load.invalid_names.items():
        desired.problems[name] = list(probs)
    models = list(load.models)
    if check_host:
        ok = []
        for decl in models:
            probs = host_problems(decl, inventory)
            if probs:
                desired.problems[decl.name] = probs
            else:
                ok.append(decl)
        models = ok
    ports = assign_ports({m.name: m.spec.port for m in models}, config.ports.start, config.ports.end,
                         held_ports, preview=preview, taken=taken_ports)
    renderer = Renderer(config, inventory)
    for decl in models:
        try:
            desired.rendered[decl.name] = renderer.render(decl, ports[decl.name])
        except RenderError as exc:
            line = decl.line_of(exc.field.split(".", 1)[1]) if exc.field.startswith("spec.") else decl.line
            desired.problems[decl.name] = [Problem(decl.file, line, exc.field, str(exc), exc.hint)]
    return desired
