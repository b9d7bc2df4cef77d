"""Which backend answers a `model` field: every declared model by name, by alias and, for vLLM, by its
model id (render.served_names: the names the backend itself answers to). Pure.

Built from the daemon's last reconcile pass (or straight from the manifests before the first one).
A name always wins over an alias, an alias over a model id; a name two models claim goes to the first
by name (and is reported in `conflicts`; the rules are desired/served.py's, which `plan` and the log
share). A model whose manifest turned invalid keeps its previous route
(aliases and model ids included, marked with the manifest error) as long as the plan keeps it: the
reconciler keeps its last good process running, so the router keeps sending it requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from xgen_declare.desired.served import claims

__all__ = ["Route", "RouteTable", "table_from_decls"]


@dataclass(frozen=True)
class Route:
    name: str
    aliases: tuple[str, ...] = ()
    activation: str = "always"           # always | on-demand
    idle_timeout: float | None = None    # seconds; on-demand only
    ready_timeout: float = 600.0
    api_key_file: str | None = None      # the backend's key: the router sends it upstream
    server_type: str = "llm"
    enabled: bool = True
    manifest_error: str | None = None    # the manifest is invalid now: this is the last good route
    drain_timeout: float = 60.0          # a rollout or stop may hold requests this long, plus stop_grace
    stop_grace: float = 10.0
    file: str | None = None              # the manifest that declares it (named in errors)

    @property
    def on_demand(self) -> bool:
        return self.activation == "on-demand"


@dataclass
class RouteTable:
    routes: dict[str, Route] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)   # alias -> model name
    conflicts: list[str] = field(default_factory=list)
    elsewhere: dict[str, str] = field(default_factory=dict)  # declared models not for this host -> why

    def resolve(self, model: str) -> Route | None:
        name = model if model in self.routes else self.aliases.get(model)
        return self.routes.get(name) if name else None

    def names(self) -> list[str]:
        return sorted(self.routes)

    def known(self) -> list[str]:
        """Every name a client may send: model names, then aliases and model ids."""
        return self.names() + sorted(a for a in self.aliases if a not in self.routes)


def table_from_decls(decls: Iterable, kept: Mapping[str, str] | None = None,
                     previous: RouteTable | None = None, elsewhere: Mapping[str, str] | None = None) -> RouteTable:
    """`decls`: manifests.ModelDecl (name + spec) of the valid manifests. `kept`: name -> manifest error of
    the models the plan keeps although their manifest is invalid; each keeps its route of `previous`."""
    decls = sorted(decls, key=lambda d: d.name)
    routes: dict[str, Route] = {}
    for d in decls:
        s = d.spec
        routes[d.name] = Route(d.name, tuple(s.alias), s.activation, s.idle_timeout, s.ready_timeout,
                               s.api_key_file, s.server_type, s.enabled, drain_timeout=s.rollout.drain_timeout,
                               stop_grace=s.stop_grace, file=getattr(d, "file", None))
    for name, error in (kept or {}).items():
        last_good = previous.routes.get(name) if previous is not None else None
        if name not in routes and last_good is not None:
            routes[name] = replace(last_good, manifest_error=error)
    table = RouteTable(elsewhere=dict(elsewhere or {}))
    for name in sorted(routes):
        table.routes[name] = routes[name]
    table.aliases, table.conflicts = claims({n: r.aliases for n, r in table.routes.items()}, decls)
    for name in kept or {}:  # a kept model's model ids, as its last good route had them
        if name in table.routes and previous is not None:
            for model_id, owner in previous.aliases.items():
                if owner == name and model_id not in table.routes:
                    table.aliases.setdefault(model_id, name)
    return table
