"""Desired state: manifests + config + inventory (+ ports held in the state) -> rendered models.

Shared by `render`, `plan`, `apply`, the daemon and the API, so they all see the same commands. Each
model is resolved once (resolve.py); placement, render, the Ray nodes and the RPC entries all read that
one `Resolved`. A model whose manifest is invalid or that cannot be rendered gets a problem, never an
exception: the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace
from typing import Any, Callable, Collection, Mapping

from xgen_declare.config import Config
from xgen_declare.desired import ray, rpc, rpc_remote
from xgen_declare.desired.checks import gpu_problems, host_problems
from xgen_declare.desired.demands import HubLookup, place
from xgen_declare.desired.hosts import select_for_host, with_overrides
from xgen_declare.desired.ports import NO_PORT, PortAssignment, exhausted_text, fit_ports
from xgen_declare.desired.render import Entries, Rendered, Renderer
from xgen_declare.desired.resolve import Resolved, resolve, with_placement
from xgen_declare.errors import Problem, RenderError
from xgen_declare.inventory.labels import host_labels
from xgen_declare.inventory.model import Inventory
from xgen_declare.manifests.load import LoadResult, ModelDecl, load_paths
from xgen_declare.placement.ledger import Ledger


@dataclass
class Desired:
    load: LoadResult
    rendered: dict[str, Rendered] = field(default_factory=dict)
    # model name -> problems that stop it from being rendered (invalid manifest, render error, ...)
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    ledger: Ledger | None = None  # memory per device across the models (None: placement not computed)
    dormant: set[str] = field(default_factory=set)  # on-demand models not wanted now: outside the ledger
    # model name -> what this host cannot give it (gpu_problems): rendered, but Blocked, outside the ledger
    blocked: dict[str, list[Problem]] = field(default_factory=dict)
    resolved: dict[str, Resolved] = field(default_factory=dict)  # the models this host serves, as resolved
    # the models the port range had no port left for (each also in `blocked`): sorted, with the range
    unported: list[str] = field(default_factory=list)
    port_range: tuple[int, int] | None = None
    renderer: Renderer | None = None  # the pass's renderer (a surge renders a model again on a spare port)
    labels: dict[str, str] = field(default_factory=dict)  # this host's labels (inventory/labels.py)
    # model name -> why its spec.hosts does not select this host (desired/hosts.py): not rendered here
    elsewhere: dict[str, str] = field(default_factory=dict)
    # model name -> the spec.overrides applied on this host, as plan and render show them
    overrides: dict[str, list[str]] = field(default_factory=dict)
    overridden: dict[str, ModelDecl] = field(default_factory=dict)  # the decls those overrides made

    @property
    def here(self) -> list[ModelDecl]:
        """The valid manifests of the models for this host (the router's table, the name claims)."""
        return [self.overridden.get(d.name, d) for d in self.load.models if d.name not in self.elsewhere]

    @property
    def names(self) -> set[str]:
        return set(self.rendered) | set(self.problems)


def build_desired(paths: list[str], config: Config, inventory: Inventory, *,
                  held_ports: dict[str, int] | None = None, preview: bool = False,
                  taken_ports: set[int] | None = None, check_host: bool = False, placement: bool = True,
                  seen: Mapping[str, Any] | None = None, changing: frozenset[str] = frozenset(),
                  awake: Collection[str] | None = None, select: bool = True,
                  local_path: Callable[[ModelDecl], str | None] | None = None,
                  hub: HubLookup | None = None) -> Desired:
    """`placement`: build the memory ledger and resolve `n_gpu_layers`/`tensor_split: auto` (reads GGUF
    headers and config.json); `seen`/`changing`: the running models, see demands.place.
    `awake`: the on-demand models wanted running now (the router's); None = those running now. The
    others are `dormant`: rendered (their port stays theirs) but left out of the memory ledger.
    `select`: leave out the models whose spec.hosts does not select this host (`elsewhere`); False for an
    export, whose target is not this host. `local_path(decl)`: where the store holds a hub or URL source's
    files (None: not there yet): the model is resolved and rendered on that local path (llama-server
    --model FILE, vLLM the snapshot dir), never on the hub id. The host's labels: the inventory's, then
    config.host.labels (a preview of another host passes a config without them: desired/hosts.for_another_host).
    `hub(decl)`: the hub's metadata of a source not in the store yet, for the memory ledger (demands.demand_for)."""
    load = load_paths(paths)
    desired = Desired(load=load, labels=host_labels(inventory, configured=config.host.labels))
    for name, probs in load.invalid_names.items():
        desired.problems[name] = list(probs)
    decls = load.models
    if select:
        decls, desired.elsewhere = select_for_host(load.models, desired.labels)
        decls = _overridden(desired, decls)
    if local_path is not None:
        decls = [on_local_path(d, local_path(d)) for d in decls]
    models = [resolve(decl, inventory) for decl in decls]  # the one resolution of this pass
    if check_host:
        ok = []
        for res in models:
            probs = host_problems(res, inventory)
            if probs:
                desired.problems[res.name] = probs
            else:
                ok.append(res)
        models = ok
    models, ray_nodes = ray.split_models(models, ray.this_host_names(config), config)  # docs/ray.md
    models, rpc_workers = rpc_remote.split_models(models, rpc.host_names(config))  # RPC: docs/rpc.md
    ports = _ports(desired, models, config, held_ports, preview, taken_ports)
    desired.dormant = dormant_models(models, awake, seen)
    desired.blocked = {m.name: probs for m in models if (probs := gpu_problems(m, inventory))}
    for res in models:
        if res.name in desired.unported:
            desired.blocked.setdefault(res.name, []).insert(0, _no_port_problem(res, config))
    if placement:
        placed = [ray.per_node(m) for m in models if m.name not in desired.dormant and m.name not in desired.blocked]
        desired.ledger = place(placed, inventory, config.placement.margin_mib, seen, changing,
                               config.placement.host_memory_mib, hub)
    renderer = desired.renderer = Renderer(config, inventory)
    for res in models:
        entry = desired.ledger.entry(res.name) if desired.ledger else None
        if entry is not None and entry.resolved:
            res = with_placement(res, entry.n_gpu_layers, entry.tensor_split, entry.n_cpu_moe)
        desired.resolved[res.name] = res
        try:
            desired.rendered[res.name] = renderer.render(res, ports[res.name])
        except RenderError as exc:
            decl = res.decl
            line = decl.line_of(exc.field.split(".", 1)[1]) if exc.field.startswith("spec.") else decl.line
            desired.problems[res.name] = [Problem(decl.file, line, exc.field, str(exc), exc.hint)]
    declared = {d.name for d in load.models}
    _merge(desired, ray.node_entries(ray_nodes, declared, renderer, config))
    _merge(desired, rpc_remote.worker_entries(rpc_workers, declared, set(desired.rendered), renderer, config))
    return desired


def _overridden(desired: Desired, decls: list[ModelDecl]) -> list[ModelDecl]:
    """The decls with this host's spec.overrides (desired/hosts.py); a model whose overrides conflict here
    gets its problems instead (it keeps its last good process)."""
    out = []
    for decl in decls:
        o = with_overrides(decl, desired.labels)
        if o.problems:
            desired.problems[decl.name] = o.problems
            continue
        if o.applied:
            desired.overrides[decl.name], desired.overridden[decl.name] = o.applied, o.decl
        out.append(o.decl)
    return out

def on_local_path(decl: ModelDecl, path: str | None) -> ModelDecl:
    """The model with its fetched files' local path as model_path (no hf_file): what the backend is given."""
    if path is None:
        return decl
    return replace(decl, spec=decl.spec.model_copy(update={"model_path": path, "hf_file": None}))


def _ports(desired: Desired, models: list[Resolved], config: Config, held: dict[str, int] | None, preview: bool,
           taken: set[int] | None) -> dict[str, PortAssignment]:
    """Enabled models take ports (explicit, held, then the lowest free); a disabled one takes none unless
    its manifest names one. A model the range has no room for gets NO_PORT and is Blocked (the others
    still start: one full range never stops the whole pass)."""
    start, end = config.ports.start, config.ports.end
    enabled = {m.name: m.spec.port for m in models if m.spec.enabled}
    ports, missing = fit_ports(enabled, start, end, held, preview=preview, taken=taken)
    for m in models:
        if not m.spec.enabled:
            ports[m.name] = PortAssignment(m.spec.port, "manifest") if m.spec.port is not None else NO_PORT
    for name in missing:
        ports[name] = NO_PORT
    desired.unported, desired.port_range = missing, (start, end)
    return ports


def _no_port_problem(res: Resolved, config: Config) -> Problem:
    decl = res.decl
    return Problem(decl.file, decl.line, "spec.port",
                   f"{exhausted_text(config.ports.start, config.ports.end)} (ports: in xgen-declare.yaml): every "
                   "port of the range is taken by other models",
                   f"widen ports: in xgen-declare.yaml, or give {decl.name} an explicit spec.port")


def _merge(desired: Desired, entries: Entries) -> None:
    for name in entries.withdrawn:
        desired.rendered.pop(name, None)
    desired.problems.update(entries.problems)
    desired.rendered.update(entries.rendered)


def dormant_models(models: list[Resolved], awake: Collection[str] | None,
                   seen: Mapping[str, Any] | None) -> set[str]:
    if awake is None:
        awake = {name for name, s in (seen or {}).items() if getattr(s, "running", False)}
    return {m.name for m in models if m.spec.activation == "on-demand" and m.name not in awake}
