"""RPC workers on hosts that do not run the model's llama-server (`rpc_server_host` names another host).

On such a host the model itself is not served; each of its workers whose `host` is one of this host's
names (never a loopback name: those belong to the server's host) becomes an entry of its own,
`<model>-rpc-<port>`, supervised like any model: its own process group, a TCP readiness and liveness
probe (probes.TCP_PROBE), restart with back-off, adoption, `down`/`up` by name. The server's host sees
a worker that dies as llama-server aborting on the next request; it is restarted there with back-off
until the worker is back. See docs/rpc.md.
"""

from __future__ import annotations

from dataclasses import dataclass


from xgen_declare.desired import rpc
from xgen_declare.processes.rpc_workers import WORKER_STOP_GRACE
from xgen_declare.config import Config
from xgen_declare.errors import Problem, RenderError
from xgen_declare.desired.resolve import Resolved
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.names import derived_name_error
from xgen_declare.processes.probes import TCP_PROBE
from xgen_declare.desired.render import Entries, Rendered, Renderer
from xgen_declare.manifests.fields import LOOPBACK_HOSTS, RpcWorker


@dataclass(frozen=True)
class RemoteWorker:
    res: Resolved
    index: int  # position in rpc_workers
    worker: RpcWorker

    @property
    def decl(self) -> ModelDecl:
        return self.res.decl

    @property
    def name(self) -> str:
        return entry_name(self.decl.name, self.worker.port)


def entry_name(model: str, port: int) -> str:
    return f"{model}-rpc-{port}"


def split_models(models: list[Resolved], names: frozenset[str]) -> tuple[list[Resolved], list[RemoteWorker]]:
    """The models whose llama-server runs here, and the workers this host runs for models served elsewhere."""
    keep, workers = [], []
    for res in models:
        decl = res.decl
        server = decl.spec.rpc_server_host
        if server is None or server in names:
            keep.append(res)
            continue
        workers.extend(RemoteWorker(res, i, w) for i, w in enumerate(decl.spec.rpc_workers)
                       if w.host in names and w.host not in LOOPBACK_HOSTS)
    return keep, workers


def render_entry(rw: RemoteWorker, renderer: Renderer, config: Config) -> Rendered:
    decl, spec, w = rw.decl, rw.decl.spec, rw.worker
    backend = rw.res.backend
    server_binary = renderer.binary_for(backend, decl) if backend else "llama-server"
    binary = rpc.worker_binary(config, server_binary)
    ws = rpc.render_worker(renderer.argv, decl.name, w, binary, config)
    host = ws.connect_host
    where = f"[{host}]" if ":" in host else host
    warnings = [f"rpc_workers[{i}]: {text}" for i, text in rpc.rpc_warnings(spec, config, frozenset({w.host}))
                if i == rw.index]
    return Rendered(
        name=rw.name, backend="rpc-worker", argv=list(ws.argv), env=dict(spec.env), port=w.port, host=host,
        endpoint=f"{where}:{w.port}", readiness_path=TCP_PROBE, binary=ws.argv[0], dialect=None,
        backend_reason=f"RPC worker of {decl.name}, whose llama-server runs on {spec.rpc_server_host}",
        port_source="manifest", ready_timeout=ws.ready_timeout, stop_grace=WORKER_STOP_GRACE,
        enabled=spec.enabled, gpus=None, file=decl.file, warnings=warnings, plan_warnings=list(warnings))


def worker_entries(workers: list[RemoteWorker], declared: set[str], taken: set[str], renderer: Renderer,
                   config: Config) -> Entries:
    """This host's workers of models served elsewhere, rendered (`declared`: every name a manifest declares,
    `taken`: the entries rendered so far)."""
    out = Entries()
    for rw in workers:
        decl = rw.decl
        line = decl.line_of("rpc_workers", rw.index)
        too_long = derived_name_error(decl.name, rw.name, "RPC worker entry")
        if too_long:
            out.problems.setdefault(decl.name, []).append(Problem(
                decl.file, decl.doc.line_of(("metadata", "name")) if decl.doc else decl.line, "metadata.name",
                *too_long))
            continue
        if rw.name in declared or rw.name in taken or rw.name in out.rendered:
            out.problems[decl.name] = [Problem(decl.file, line, f"spec.rpc_workers[{rw.index}]",
                                                   f"its RPC worker entry would be named {rw.name}, which "
                                                   "another model uses", "rename one of the models")]
            continue
        try:
            out.rendered[rw.name] = render_entry(rw, renderer, config)
        except RenderError as exc:
            out.problems[rw.name] = [Problem(decl.file, line, exc.field, str(exc), exc.hint)]
    return out
