"""Manifests -> one Deployment + Service per model (a LeaderWorkerSet + Service for a `distributed: ray`
vLLM model), or per-model problems.

The container's argv comes from the same `Renderer` as a local process: `build_desired` loads and
validates the manifests, assigns ports and renders every model against the cluster inventory (which
catches invalid manifests and template errors); each model is then rendered once more from an
in-memory copy of its spec with what differs inside a pod: host 0.0.0.0 (a pod listens on its IP),
the model path inside the container, the executable inside the image, the api key file where its
Secret is mounted, and no host GPU indices (the device plugin picks the GPUs). Manifests on disk are
never changed. A model that cannot be expressed gets problems and no objects.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shlex
from dataclasses import dataclass, field, replace

from xgen_declare.backends.profile import VLLM, profile
from xgen_declare.backends.families import GPU_KIND
from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.desired.hosts import for_another_host
from xgen_declare.errors import Problem, RenderError
from xgen_declare.inventory.model import Inventory
from xgen_declare.manifests.load import ModelDecl
from xgen_declare.desired.ports import PortAssignment, assign_ports
from xgen_declare.desired.ray import CPU_HAS_NO_RAY, per_node_decl
from xgen_declare.processes.spec import SECRET_KEY as SECRET_NAME
from xgen_declare.desired.render import Rendered, Renderer
from xgen_declare.desired.resolve import resolve, resolve_model_path
from xgen_declare.export.cluster import cluster_inventory, command_for, container_path, image_for
from xgen_declare.export.gpu import GpuNeeds, gpu_needs
from xgen_declare.export.hosts import node_affinity, overrides_problem
from xgen_declare.export.hub import PinLookup, for_pod

MANAGED_BY = {"app.kubernetes.io/managed-by": "xgen-declare"}
API_KEY_DIR = "/var/run/secrets/xgen-declare/api-key"
API_KEY_KEY = "api-key"
STARTUP_PERIOD = 10
ROLE_LABEL = "xgen-declare/role"  # leader | worker, on a LeaderWorkerSet's pods
LEADER, WORKER = "leader", "worker"
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass
class ModelExport:
    name: str
    manifest: str  # the manifest file, relative to the exported directory
    objects: list[dict]
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (Secret name, key) the pod reads
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class ExportResult:
    namespace: str | None
    models: dict[str, ModelExport] = field(default_factory=dict)
    problems: dict[str, list[Problem]] = field(default_factory=dict)  # model -> why it was not exported
    file_problems: list[Problem] = field(default_factory=list)  # files that name no model (unreadable, ...)
    elsewhere: dict[str, str] = field(default_factory=dict)  # model -> why spec.hosts leaves the --inventory out
    applied: dict[str, list[str]] = field(default_factory=dict)  # model -> spec.overrides applied for those nodes

    @property
    def complete(self) -> bool:
        return not self.problems and not self.file_problems


def api_key_secret(model: str) -> str:
    return f"{model}-api-key"


def export_kubernetes(paths: list[str], config: Config, nodes: Inventory | None = None,
                      pins: PinLookup | None = None) -> ExportResult:
    """`nodes`: an inventory of the GPU nodes (--inventory), or None: every backend with an image. With
    `nodes`, spec.hosts and spec.overrides are applied for its labels; without, a model with overrides is
    refused, and spec.hosts becomes node affinity where it can (export/hosts.py). `pins(source)`: the commit
    this host's store pinned a hub source to (export/hub.py renders it for the pod)."""
    inventory = cluster_inventory(config, nodes)
    decided = nodes is not None  # this machine's host.labels are not the nodes' (as plan --inventory)
    desired = build_desired(paths, for_another_host(config) if decided else config, inventory, preview=True,
                            select=decided)
    result = ExportResult(namespace=config.kubernetes.namespace, elsewhere=dict(desired.elsewhere),
                          applied=dict(desired.overrides))
    named = {id(p) for probs in desired.load.invalid_names.values() for p in probs}
    result.file_problems = [p for p in desired.load.problems if id(p) not in named and p.severity == "error"]
    result.problems.update({n: list(p) for n, p in desired.problems.items()})
    renderer = Renderer(config, inventory)
    for decl in desired.load.models:
        if decl.name in desired.elsewhere:
            continue
        decl = desired.overridden.get(decl.name, decl)
        refused = None if decided else overrides_problem(decl)
        if refused is not None and decl.name not in result.problems:
            result.problems[decl.name] = [refused]
            continue
        if decl.spec.rpc_workers:  # llama-server without its workers would abort (docs/rpc.md)
            result.problems[decl.name] = [Problem(
                decl.file, decl.line_of("rpc_workers"), "spec.rpc_workers", "a model with llama.cpp RPC workers "
                "is not exported: its workers need pods of their own and llama-server their addresses, which "
                "the export does not express (docs/kubernetes.md)",
                "run it with xgen-declare on each host (docs/rpc.md) or leave it out of the export")]
            continue
        if decl.name in result.problems:
            continue
        if decl.spec.distributed is not None:  # a LeaderWorkerSet; never rendered for this host (docs/ray.md)
            rendered, problems = _render_distributed(decl, renderer, config)
            if problems:
                result.problems[decl.name] = problems
                continue
        else:
            rendered = desired.rendered.get(decl.name)
        if rendered is None:
            continue
        exported, problems = _export_model(decl, rendered, renderer, config, inventory, nodes, paths, pins)
        if problems:
            result.problems[decl.name] = problems
        else:
            result.models[decl.name] = exported
    return result


def _render_distributed(decl: ModelDecl, renderer: Renderer,
                        config: Config) -> tuple[Rendered | None, list[Problem]]:
    """The vLLM server of a `distributed: ray` model as the head would run it, from the manifest as
    written: `build_desired` renders it only on the host named `ray.head` (with that host's RAY_ADDRESS),
    and in the cluster the head is the LeaderWorkerSet's leader pod, wherever it lands."""
    port = assign_ports({decl.name: decl.spec.port}, config.ports.start, config.ports.end, preview=True)[decl.name]
    try:
        return renderer.render(resolve(decl, renderer.inventory), port), []
    except RenderError as exc:
        return None, [Problem(decl.file, decl.line, exc.field or "spec", str(exc), exc.hint)]


def _export_model(decl: ModelDecl, rendered: Rendered, renderer: Renderer, config: Config,
                  inventory: Inventory, nodes: Inventory | None, paths: list[str],
                  pins: PinLookup | None = None) -> tuple[ModelExport | None, list[Problem]]:
    spec, backend = decl.spec, rendered.backend
    problems: list[Problem] = []
    warnings: list[Problem] = []

    def problem(fld: str, line: int, message: str, hint: str = "") -> None:
        problems.append(Problem(decl.file, line, fld, message, hint))

    if not inventory.is_available(backend):
        reason = inventory.backend(backend).reason
        hint = (f"add `kubernetes: images: {backend}: IMAGE` to xgen-declare.yaml"
                if image_for(config, backend) is None else "pick another backend")
        problem("spec.backend", decl.line_of("backend"), f"backend {backend} cannot run in the cluster: {reason}",
                hint)
    distributed = spec.distributed is not None
    # GPUs per pod: a distributed model's pod holds one pipeline stage (gpus / tensor_parallel_size)
    needs, gpu_problems = gpu_needs(per_node_decl(decl) if distributed else decl, backend, config, nodes)
    problems.extend(gpu_problems)
    host_affinity, host_problems = node_affinity(decl, decided_by_inventory=nodes is not None)
    problems.extend(host_problems)
    if not _DNS1035.match(decl.name):
        problem("metadata.name", decl.doc.line_of(("metadata", "name")) if decl.doc else decl.line,
                f"`{decl.name}` cannot name a Kubernetes Service (a DNS-1035 label: starts with a letter, ends "
                "with a letter or digit)", "rename the model")
    for key, value in decl.labels.items():
        why = _label_problem(key, value)
        if why:
            problem(f"metadata.labels.{key}", decl.doc.line_of(("metadata", "labels", key)) if decl.doc
                    else decl.line, why, "Kubernetes label rules: https://kubernetes.io/docs/concepts/"
                    "overview/working-with-objects/labels/#syntax-and-character-set")
    for key in spec.env:
        if SECRET_NAME.search(key) and key not in config.kubernetes.secret_env:
            problem(f"spec.env.{key}", decl.line_of("env", key), "looks like a secret and would be written "
                    "literally into the Deployment", f"map it to a Secret in kubernetes.secret_env: {key}: "
                    "{name: ..., key: ...}")
    update: dict = {"host": "0.0.0.0", "port": rendered.port, "gpus": None, "binary": command_for(config, backend)}
    local = resolve_model_path(spec.model_path, decl.file)
    mounts_models = os.path.isabs(local)
    if mounts_models:
        inside, why = container_path(local, config)
        if inside is None:
            problem("spec.model_path", decl.line_of("model_path"), f"{local} is a path on this host and a pod "
                    f"cannot see it: {why}", "set kubernetes.model_volume (local_dir + claim or host_path) in "
                    "xgen-declare.yaml")
        update["model_path"] = inside
    mounts_api_key = spec.api_key_file is not None and profile(backend).api_key == "file_flag"
    if mounts_api_key:
        update["api_key_file"] = f"{API_KEY_DIR}/{API_KEY_KEY}"
    hub = for_pod(decl, backend, pins)  # a hub model: the pod downloads it (the pinned commit, or a warning)
    problems.extend(hub.problems)
    warnings.extend(hub.warnings)
    if hub.args:
        update["extra_args"] = [*spec.extra_args, *hub.args]
    if problems:
        return None, problems
    needs = replace(needs, match_expressions=[*needs.match_expressions, *host_affinity])  # one term: ANDed
    if distributed and GPU_KIND[backend] is None:
        warnings.append(Problem(decl.file, decl.line_of("backend"), "spec.backend", CPU_HAS_NO_RAY,
                                severity="warning"))
    if spec.binary:
        warnings.append(Problem(decl.file, decl.line_of("binary"), "spec.binary", f"is a host path; the pod "
                                f"runs the image's {update['binary']} instead", severity="warning"))
    for i, arg in enumerate(spec.extra_args):
        if arg.startswith("/"):
            warnings.append(Problem(decl.file, decl.line_of("extra_args", i), f"spec.extra_args[{i}]",
                                    f"{arg} looks like a host path and is passed to the pod unchanged",
                                    severity="warning"))
    pod_decl = replace(decl, spec=spec.model_copy(update=update))
    try:
        argv_model = renderer.render(resolve(pod_decl, renderer.inventory),
                                     PortAssignment(rendered.port, rendered.port_source))
    except RenderError as exc:
        return None, [Problem(decl.file, decl.line, exc.field or "spec", str(exc), exc.hint)]
    secrets = sorted({(api_key_secret(decl.name), API_KEY_KEY)} if (mounts_api_key or argv_model.secret_env)
                     else set()) + sorted((r.name, r.key) for r in config.kubernetes.secret_env.values())
    if distributed:
        try:
            lws = leader_worker_set(decl, argv_model, needs, config, mounts_models, mounts_api_key, paths, renderer)
        except RenderError as exc:  # ray.j2, rendered here for the pods
            return None, [Problem(decl.file, decl.line, exc.field or "spec.ray", str(exc), exc.hint)]
        objects = [lws, service(decl, argv_model, config, role=LEADER)]
    else:
        objects = [deployment(decl, argv_model, needs, config, mounts_models, mounts_api_key, paths),
                   service(decl, argv_model, config)]
    return ModelExport(decl.name, _manifest_name(decl.file, paths), objects, secrets, warnings), []


def _label_problem(key: str, value: str) -> str:
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or not _LABEL_NAME.match(name) or (prefix and (len(prefix) > 253
                                                                    or not _LABEL_PREFIX.match(prefix))):
        return f"`{key}` is not a valid Kubernetes label key"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return f"`{value}` is not a valid Kubernetes label value (at most 63 letters, digits, '-', '_', '.')"
    return ""


def _manifest_name(file: str, paths: list[str]) -> str:
    for p in paths:
        base = os.path.abspath(p)
        if os.path.isdir(base) and os.path.commonpath([base, os.path.abspath(file)]) == base:
            return os.path.relpath(os.path.abspath(file), base)
    return os.path.basename(file)


def labels(decl: ModelDecl) -> dict[str, str]:
    return {**decl.labels, "app.kubernetes.io/name": decl.name, **MANAGED_BY}


def selector(decl: ModelDecl) -> dict[str, str]:
    return {"app.kubernetes.io/name": decl.name, **MANAGED_BY}


def _metadata(decl: ModelDecl, config: Config, **extra) -> dict:
    meta = {"name": decl.name}
    if config.kubernetes.namespace:
        meta["namespace"] = config.kubernetes.namespace
    meta["labels"] = labels(decl)
    meta.update(extra)
    return meta


def _probe(path: str, period: float, failures: int, timeout: float) -> dict:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": max(1, math.ceil(period)),
            "timeoutSeconds": max(1, math.ceil(timeout)), "failureThreshold": max(1, failures)}


def _env(decl: ModelDecl, model: Rendered, needs: GpuNeeds, config: Config) -> list[dict]:
    secret_env = config.kubernetes.secret_env
    env = {k: v for k, v in model.env.items() if v is not None and k not in secret_env}
    if profile(model.backend).pinning == "vulkan" and needs.vendor == "nvidia":
        env.setdefault("NVIDIA_DRIVER_CAPABILITIES", "compute,utility,graphics")  # the Vulkan ICD needs graphics
    out: list[dict] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    for var in sorted(model.secret_env):
        out.append({"name": var, "valueFrom": {"secretKeyRef": {"name": api_key_secret(decl.name),
                                                                "key": API_KEY_KEY}}})
    for var, ref in sorted(secret_env.items()):
        out.append({"name": var, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return out


def deployment(decl: ModelDecl, model: Rendered, needs: GpuNeeds, config: Config, mounts_models: bool,
               mounts_api_key: bool, paths: list[str]) -> dict:
    image = image_for(config, model.backend)
    rc = config.reconciler
    container: dict = {
        "name": profile(model.backend).family, "image": image.image, "command": model.argv[:1], "args": model.argv[1:],
        "ports": [{"name": "http", "containerPort": model.port, "protocol": "TCP"}],
    }
    env = _env(decl, model, needs, config)
    if env:
        container["env"] = env
    if needs.count:
        container["resources"] = {"requests": {needs.resource: str(needs.count)},  # a Quantity
                                  "limits": {needs.resource: str(needs.count)}}
    failures = math.ceil(model.ready_timeout / STARTUP_PERIOD)
    container["startupProbe"] = _probe(model.readiness_path, STARTUP_PERIOD, failures, rc.probe_timeout)
    container["readinessProbe"] = _probe(model.readiness_path, rc.liveness_period, 3, rc.probe_timeout)
    container["livenessProbe"] = _probe(model.readiness_path, rc.liveness_period, rc.liveness_threshold,
                                        rc.probe_timeout)
    mounts, volumes = _volumes(decl, model, needs, config, mounts_models, mounts_api_key)
    if mounts:
        container["volumeMounts"] = mounts
    if decl.spec.mlock:  # locking the weights in RAM needs more than the default RLIMIT_MEMLOCK
        container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    pod: dict = {"enableServiceLinks": False,  # FOO_PORT variables of other Services confuse vLLM (VLLM_PORT)
                 "terminationGracePeriodSeconds": math.ceil(model.stop_grace), "containers": [container]}
    if needs.match_expressions:
        pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": needs.match_expressions}]}}}
    if volumes:
        pod["volumes"] = volumes
    annotations = {"xgen-declare/backend": model.backend, "xgen-declare/manifest": _manifest_name(decl.file, paths)}
    spec: dict = {"replicas": 1 if decl.spec.enabled else 0, "selector": {"matchLabels": selector(decl)}}
    if needs.count:
        spec["strategy"] = {"type": "Recreate"}  # two copies never hold one GPU
    spec["template"] = {"metadata": {"labels": labels(decl)}, "spec": pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _metadata(decl, config, annotations=annotations), "spec": spec}


def _volumes(decl: ModelDecl, model: Rendered, needs: GpuNeeds, config: Config, mounts_models: bool,
             mounts_api_key: bool) -> tuple[list[dict], list[dict]]:
    mounts, volumes = [], []
    mv = config.kubernetes.model_volume
    if mounts_models and mv is not None:
        mounts.append({"name": "models", "mountPath": mv.mount_path or mv.local_dir, "readOnly": mv.read_only})
        source = ({"persistentVolumeClaim": {"claimName": mv.claim, "readOnly": mv.read_only}} if mv.claim
                  else {"hostPath": {"path": mv.host_path, "type": "Directory"}})
        volumes.append({"name": "models", **source})
    if mounts_api_key:
        mounts.append({"name": "api-key", "mountPath": API_KEY_DIR, "readOnly": True})
        volumes.append({"name": "api-key", "secret": {"secretName": api_key_secret(decl.name),
                                                      "items": [{"key": API_KEY_KEY, "path": API_KEY_KEY}]}})
    if profile(model.backend).engine == VLLM and (needs.count > 1 or decl.spec.distributed):
        # NCCL between GPUs needs more than 64 MiB shm, and so does Ray's object store
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    return mounts, volumes


def service(decl: ModelDecl, model: Rendered, config: Config, role: str | None = None) -> dict:
    """`role`: a LeaderWorkerSet's Service selects its leader pod only (the one serving HTTP)."""
    select = {**selector(decl), ROLE_LABEL: role} if role else selector(decl)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(decl, config),
            "spec": {"type": "ClusterIP", "selector": select,
                     "ports": [{"name": "http", "port": model.port, "targetPort": "http", "protocol": "TCP"}]}}


def leader_worker_set(decl: ModelDecl, model: Rendered, needs: GpuNeeds, config: Config, mounts_models: bool,
                      mounts_api_key: bool, paths: list[str], renderer: Renderer) -> dict:
    """A `distributed: ray` vLLM model: one LeaderWorkerSet group of `nodes` pods, each holding one
    pipeline stage's GPUs. The leader starts the Ray head, then `vllm serve ... --distributed-executor-backend
    ray`; the workers join its Ray cluster. Follows the upstream example
    https://github.com/kubernetes-sigs/lws/blob/060ab4da17eea1f0865fcbd3236bb1075e2cea32/docs/examples/vllm/GPU/lws.yaml
    (size = nodes, restartPolicy RecreateGroupOnPodRestart, workers reach the leader at $(LWS_LEADER_ADDRESS),
    which LWS sets in every pod), without its shell script: the Ray nodes come from templates/ray.j2.

    The leader's pod is the Deployment's pod template (image, env and secrets, GPUs per node, volumes,
    node affinity, probes on /health with a startupProbe sized from ready_timeout,
    terminationGracePeriodSeconds from stop_grace); the workers get the same pod without HTTP."""
    ray = decl.spec.ray
    assert ray is not None and decl.spec.distributed == "ray"
    pod = deployment(decl, model, needs, config, mounts_models, mounts_api_key, paths)
    leader_pod = pod["spec"]["template"]["spec"]
    worker_pod = copy.deepcopy(leader_pod)
    binary = _ray_binary(config, model.backend)
    head = [a for a in _ray_argv(renderer, "head", binary, ray) if a != "--block"]  # returns once the head runs
    # A shell is unavoidable here: the Ray head must be running before `vllm serve` (in the same container,
    # which ray.init finds), and vLLM must stay the container's main process for the probes and SIGTERM:
    # `ray start --head && exec vllm serve ...`, both parts shlex-quoted from the rendered argv. vLLM waits
    # for the workers' GPUs (its Ray placement group) while they join.
    [leader] = leader_pod["containers"]
    leader["command"] = ["/bin/sh", "-c", f"{shlex.join(head)} && exec {shlex.join(model.argv)}"]
    del leader["args"]
    [worker] = worker_pod["containers"]
    worker["name"] = "ray-worker"
    worker["command"] = _ray_argv(renderer, "worker", binary, ray)  # argv, no shell: `ray start --block` stays up
    for key in ("args", "ports", "startupProbe", "readinessProbe", "livenessProbe"):
        worker.pop(key, None)
    worker["readinessProbe"] = {"tcpSocket": {"port": ray.node_manager_port}, "periodSeconds": 10}  # its raylet
    meta = pod["spec"]["template"]["metadata"]
    group = {"size": decl.spec.nodes, "restartPolicy": "RecreateGroupOnPodRestart",  # vLLM dies with a stage
             "leaderTemplate": {"metadata": {"labels": {**meta["labels"], ROLE_LABEL: LEADER}}, "spec": leader_pod},
             "workerTemplate": {"metadata": {"labels": {**meta["labels"], ROLE_LABEL: WORKER}}, "spec": worker_pod}}
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": pod["metadata"],
            "spec": {"replicas": pod["spec"]["replicas"], "leaderWorkerTemplate": group}}


def _ray_binary(config: Config, backend: str) -> str:
    """`ray` next to the image's vLLM executable when that is a path, else on PATH (vllm/vllm-openai)."""
    vllm = command_for(config, backend)
    return os.path.join(os.path.dirname(vllm), "ray") if os.path.dirname(vllm) else "ray"


def _ray_argv(renderer: Renderer, role: str, binary: str, ray) -> list[str]:
    """A Ray node from templates/ray.j2, as local daemons run it, minus this host's `ray:` settings: the pod's
    IP, CPUs and GPUs are what Ray detects inside the pod."""
    context = {"role": role, "binary": binary, "address": f"$(LWS_LEADER_ADDRESS):{ray.port}", "port": ray.port,
               "node_manager_port": ray.node_manager_port, "node_ip_address": None, "num_cpus": None,
               "num_gpus": None, "temp_dir": None, "extra_args": []}
    return renderer.argv("ray.j2", context)
