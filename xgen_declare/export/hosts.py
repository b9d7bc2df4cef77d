"""`spec.hosts` and `spec.overrides` in an export, whose target is a cluster's nodes, not this host: never
exported silently wrong, either applied or refused with the reason.

With `--inventory NODES.yaml` (the GPU nodes, as `xgen-declare inventory -o yaml` writes them, their
`labels:` included) the models are selected and their overrides applied for that inventory's labels,
as `plan --inventory` does (kubernetes.py passes them to build_desired; this machine's `host.labels` are
not the nodes'). A model not for those nodes is left out and listed, which is not an error.

Then every requirement of `spec.hosts` on a label that Kubernetes nodes carry becomes a node affinity
expression (same operator, ANDed with the GPU constraints of export/gpu.py in one nodeSelectorTerm):

    hostname        kubernetes.io/hostname (the node's name)
    arch            kubernetes.io/arch, the value as Go names it: x86_64 -> amd64, aarch64 -> arm64
    any other key   the node label of the same key (your own labels: `kubectl label node N site=lab-2`)

The gpu.* labels (gpu.vendor, gpu.model, gpu.count, gpu.memory_gib) are this tool's, with no node label
of the same meaning and values (GPU feature discovery writes nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB,
memory in MiB): with `--inventory` they are decided by the nodes' inventory; without one, a model that
selects on them is not exported (a problem naming the requirement). `spec.overrides` without `--inventory`
is not exported either: one Deployment runs the same argv on every node it lands on.
"""

from __future__ import annotations

import re

from xgen_declare.errors import Problem
from xgen_declare.manifests.load import ModelDecl

__all__ = ["ARCH", "NODE_KEY", "node_affinity", "overrides_problem"]

NODE_KEY = {"hostname": "kubernetes.io/hostname", "arch": "kubernetes.io/arch"}
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}
GPU_PREFIX = "gpu."
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
INVENTORY_HINT = "pass --inventory NODES.yaml (an inventory of the GPU nodes, `xgen-declare inventory -o yaml`)"


def node_affinity(decl: ModelDecl, decided_by_inventory: bool) -> tuple[list[dict], list[Problem]]:
    """The node affinity expressions of decl's spec.hosts, or the problems that keep it from the export.
    `decided_by_inventory`: the gpu.* requirements were met by the --inventory's labels (left out here)."""
    hosts = decl.spec.hosts
    if hosts is None:
        return [], []
    expressions: list[dict] = []
    problems: list[Problem] = []
    line = decl.line_of("hosts")
    for r in hosts.requirements:
        if r.key.startswith(GPU_PREFIX):
            if not decided_by_inventory:
                problems.append(Problem(
                    decl.file, line, "spec.hosts", f"`{r.describe()}` selects on a label that xgen-declare detects "
                    "on a host and Kubernetes nodes do not carry, so the export cannot say which nodes it means",
                    f"{INVENTORY_HINT}: the selection is then made for those nodes; or constrain the GPU with the "
                    "xgen-declare/gpu-* annotations (docs/kubernetes.md)"))
            continue
        key = NODE_KEY.get(r.key, r.key)
        values = [ARCH.get(v, v) for v in r.values] if r.key == "arch" else list(r.values)
        why = _node_problem(key, r.operator, values)
        if why:
            problems.append(Problem(decl.file, line, "spec.hosts", f"`{r.describe()}` cannot be a node affinity: "
                                    f"{why}", "select on node labels Kubernetes accepts, or leave the model out "
                                    "of the export"))
            continue
        expressions.append({"key": key, "operator": r.operator, **({"values": values} if values else {})})
    return expressions, problems


def overrides_problem(decl: ModelDecl) -> Problem | None:
    """A model with spec.overrides cannot be exported without the nodes' labels (None when it has none)."""
    if not decl.spec.overrides:
        return None
    return Problem(decl.file, decl.line_of("overrides"), "spec.overrides", "per-host values cannot be exported "
                   "without the nodes' labels: one Deployment runs the same argv on every node it lands on",
                   f"{INVENTORY_HINT}: the overrides for those nodes are applied (one export per kind of node)")


def _node_problem(key: str, operator: str, values: list[str]) -> str | None:
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or not _NAME.match(name) or (prefix and (len(prefix) > 253 or not _PREFIX.match(prefix))):
        return f"{key!r} is not a Kubernetes label key"
    bad = [v for v in values if len(v) > 63 or not _VALUE.match(v)]
    if bad:
        return f"{bad[0]!r} is not a Kubernetes label value (at most 63 letters, digits, '-', '_', '.')"
    if operator in ("Gt", "Lt") and not re.fullmatch(r"-?\d+", values[0]):
        return f"{operator} compares whole numbers on a node, not {values[0]!r}"
    return None
