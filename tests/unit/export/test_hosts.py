"""spec.hosts and spec.overrides in `export kubernetes` (export/hosts.py): with --inventory they are applied
for the nodes' labels as `plan --inventory` does; without, spec.hosts becomes node affinity on node labels
(hostname, arch, own labels) and what cannot be expressed (gpu.* selectors, overrides) is refused, never
exported silently wrong. Every object written is validated strictly and round-tripped."""

from __future__ import annotations

from tests.conftest import REPO, model_yaml
from tests.unit.export.conftest import load_stream, round_trip, validate_strict

A100 = str(REPO / "examples" / "inventories" / "2xa100.yaml")  # gpu-a100-01, x86_64, site: dc-1, 2 x A100 80 GB


def _objects(out: str) -> dict[str, dict]:
    objects = load_stream(out)
    for obj in objects:
        validate_strict(obj)
        assert round_trip(obj) == obj
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def _affinity(objs: dict, name: str) -> list[dict]:
    pod = objs[f"Deployment/{name}"]["spec"]["template"]["spec"]
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return term["matchExpressions"]


def _args(objs: dict, name: str) -> list[str]:
    [c] = objs[f"Deployment/{name}"]["spec"]["template"]["spec"]["containers"]
    return c["args"]


def test_hosts_on_node_labels_become_node_affinity_with_the_gpu_constraints(cli, write, k8s_dir):
    d = k8s_dir()
    write("a.yaml", """\
        apiVersion: xgen/v1
        kind: Model
        metadata:
          name: a
          annotations: {xgen-declare/gpu-product: NVIDIA-A100-SXM4-80GB}
        spec:
          model_path: /models/a.gguf
          backend: llama-server-cuda
          hosts:
            matchLabels: {site: dc-1}
            matchExpressions:
              - {key: hostname, operator: In, values: [gpu-a100-01, gpu-a100-02]}
              - {key: arch, operator: In, values: [x86_64]}
              - {key: maintenance, operator: DoesNotExist}
        """)
    r = cli("export", "kubernetes", d)
    assert (r.code, r.err) == (0, "")
    assert _affinity(_objects(r.out), "a") == [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]},
        {"key": "site", "operator": "In", "values": ["dc-1"]},
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-a100-01", "gpu-a100-02"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "maintenance", "operator": "DoesNotExist"}]


def test_without_an_inventory_gpu_selectors_and_overrides_are_refused(cli, write, k8s_dir):
    d = k8s_dir()
    write("amd.yaml", model_yaml("amd", hosts={"matchLabels": {"gpu.vendor": "amd"}}))
    write("over.yaml", model_yaml("over", overrides=[{"hosts": {"matchLabels": {"site": "dc-1"}},
                                                      "set": {"ctx_size": 8192}}]))
    write("plain.yaml", model_yaml("plain"))
    r = cli("export", "kubernetes", d)
    assert (r.code, r.out) == (1, "")
    assert r.err.splitlines() == [
        f"amd: not exported: {d}/amd.yaml:6: spec.hosts: `gpu.vendor In [amd]` selects on a label that xgen-declare "
        "detects on a host and Kubernetes nodes do not carry, so the export cannot say which nodes it means (pass "
        "--inventory NODES.yaml (an inventory of the GPU nodes, `xgen-declare inventory -o yaml`): the selection is "
        "then made for those nodes; or constrain the GPU with the xgen-declare/gpu-* annotations "
        "(docs/kubernetes.md))",
        f"over: not exported: {d}/over.yaml:6: spec.overrides: per-host values cannot be exported without the "
        "nodes' labels: one Deployment runs the same argv on every node it lands on (pass --inventory NODES.yaml "
        "(an inventory of the GPU nodes, `xgen-declare inventory -o yaml`): the overrides for those nodes are "
        "applied (one export per kind of node))",
        "nothing written: 2 model(s) cannot be exported; fix them or pass --partial"]
    r = cli("export", "kubernetes", d, "--partial")
    assert r.code == 1 and set(_objects(r.out)) == {"Deployment/plain", "Service/plain"}


def test_with_an_inventory_selection_and_overrides_are_those_of_its_nodes(cli, write, k8s_dir):
    d = k8s_dir()
    write("amd.yaml", model_yaml("amd", hosts={"matchLabels": {"gpu.vendor": "amd"}}))
    write("nv.yaml", model_yaml("nv", backend="llama-server-cuda", ctx_size=4096,
                                hosts={"matchLabels": {"gpu.vendor": "nvidia", "site": "dc-1"}},
                                overrides=[{"hosts": {"matchExpressions": [
                                    {"key": "gpu.memory_gib", "operator": "Gt", "values": ["40"]}]},
                                    "set": {"ctx_size": 32768}},
                                    {"hosts": {"matchLabels": {"site": "dc-2"}}, "set": {"ctx_size": 2048}}]))
    r = cli("export", "kubernetes", d, "--inventory", A100)
    assert r.code == 0, r.err
    assert r.err.splitlines() == [
        "amd: not for the --inventory's nodes: gpu.vendor In [amd] (this host: nvidia) (spec.hosts; left out)",
        "nv: for the --inventory's nodes: spec.overrides[0] (gpu.memory_gib > 40): ctx_size=32768"]
    objs = _objects(r.out)
    assert set(objs) == {"Deployment/nv", "Service/nv"}
    args = _args(objs, "nv")
    assert args[args.index("--ctx-size") + 1] == "32768"
    # gpu.* was decided by the inventory; the node label the nodes carry stays a constraint
    assert _affinity(objs, "nv") == [{"key": "site", "operator": "In", "values": ["dc-1"]}]


def test_a_selector_kubernetes_cannot_express_is_refused(cli, write, k8s_dir):
    d = k8s_dir()
    write("a.yaml", model_yaml("a", hosts={"matchExpressions": [
        {"key": "ram_gib", "operator": "Gt", "values": ["23.5"]}]}))
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert r.err.splitlines()[0] == (
        f"a: not exported: {d}/a.yaml:6: spec.hosts: `ram_gib > 23.5` cannot be a node affinity: Gt compares whole "
        "numbers on a node, not '23.5' (select on node labels Kubernetes accepts, or leave the model out of the "
        "export)")
