"""A `distributed: ray` vLLM model -> a LeaderWorkerSet + a Service for its leader. The LeaderWorkerSet is
validated against the vendored LWS CRD's openAPIV3Schema (strict: unknown fields refused) and its pod
templates, wrapped in PodTemplates, strictly against Kubernetes 1.30 and the newest schemas."""

from __future__ import annotations

import shlex

import jsonschema
import pytest

from tests.conftest import model_yaml
from tests.unit.export.conftest import VERSIONS, load_stream, lws_schema, validate_lws, validate_strict

RAY = {"head": "gpu-box-1", "workers": ["gpu-box-2", "gpu-box-3"], "port": 6400, "node_manager_port": 6401}


@pytest.fixture
def exported(cli, write, k8s_dir):
    def _export(extra_config: str = "", **over) -> tuple[dict, dict]:
        d = k8s_dir(extra_config)
        spec = {"model_path": "/models/big", "backend": "vllm-cuda", "nodes": 3, "distributed": "ray",
                "tensor_parallel_size": 4, "ray": RAY, "port": 8100, "api_key_file": None, **over}
        write("big.yaml", model_yaml("big", **{k: v for k, v in spec.items() if v is not None}))
        r = cli("export", "kubernetes", d)
        assert r.code == 0, r.err
        lws, svc = load_stream(r.out)
        assert validate_lws(lws) == [v.rsplit(".", 1)[0] for v in VERSIONS] * 2
        validate_strict(svc)
        return lws, svc

    return _export


def test_group_leader_and_workers(exported):
    lws, svc = exported(env={"NCCL_SOCKET_IFNAME": "eth0"})
    assert (lws["apiVersion"], lws["kind"]) == ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    group = lws["spec"]["leaderWorkerTemplate"]
    assert (lws["spec"]["replicas"], group["size"], group["restartPolicy"]) == (1, 3, "RecreateGroupOnPodRestart")
    leader_pod, worker_pod = group["leaderTemplate"]["spec"], group["workerTemplate"]["spec"]
    [leader], [worker] = leader_pod["containers"], worker_pod["containers"]
    # the leader: `ray start --head` then exec the rendered vLLM argv, each part shlex-quoted
    sh, dash_c, script = leader["command"]
    assert (sh, dash_c, "args" in leader) == ("/bin/sh", "-c", False)
    head, _, serve = script.partition(" && exec ")
    assert shlex.split(head) == ["ray", "start", "--head", "--port", "6400", "--include-dashboard=false",
                                 "--disable-usage-stats"]
    argv = shlex.split(serve)
    assert argv[:2] == ["vllm", "serve"] and "/models/big" in argv
    for flag, value in (("--tensor-parallel-size", "4"), ("--pipeline-parallel-size", "3"),
                        ("--distributed-executor-backend", "ray"), ("--port", "8100"), ("--host", "0.0.0.0")):
        assert argv[argv.index(flag) + 1] == value
    # the workers: argv, no shell
    assert worker["command"] == ["ray", "start", "--block", "--address", "$(LWS_LEADER_ADDRESS):6400",
                                 "--node-manager-port", "6401", "--disable-usage-stats"]
    assert worker["readinessProbe"]["tcpSocket"] == {"port": 6401}
    assert "ports" not in worker and "livenessProbe" not in worker
    # GPUs per pod = GPUs per node (tensor_parallel_size), not TP x PP
    for c in (leader, worker):
        assert c["resources"]["limits"] == {"nvidia.com/gpu": "4"} == c["resources"]["requests"]
        assert c["image"] == "example.org/vllm:cuda"
        assert {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"} in c["env"]
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert leader["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert leader["startupProbe"]["failureThreshold"] * leader["startupProbe"]["periodSeconds"] >= 60
    # the Service reaches the leader only
    assert svc["metadata"]["name"] == "big"
    assert svc["spec"]["selector"]["xgen-declare/role"] == "leader"
    assert group["leaderTemplate"]["metadata"]["labels"]["xgen-declare/role"] == "leader"
    assert group["workerTemplate"]["metadata"]["labels"]["xgen-declare/role"] == "worker"
    assert svc["spec"]["ports"][0]["port"] == 8100


def test_timings_affinity_and_secrets(exported):
    lws, _ = exported("secret_env: {HF_TOKEN: {name: hf, key: token}}\n", ready_timeout=900, stop_grace=45,
                      enabled=False)
    group = lws["spec"]["leaderWorkerTemplate"]
    assert lws["spec"]["replicas"] == 0
    for role in ("leaderTemplate", "workerTemplate"):
        pod = group[role]["spec"]
        assert pod["terminationGracePeriodSeconds"] == 45
        [c] = pod["containers"]
        assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}} in c["env"]
    [leader] = group["leaderTemplate"]["spec"]["containers"]
    assert leader["startupProbe"]["failureThreshold"] == 90


def test_shell_quoting_of_the_rendered_argv(exported):
    lws, _ = exported(extra_args=["--chat-template-content-format", "a b; $(rm -rf /) 'x'"])
    [leader] = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"]
    _, _, serve = leader["command"][2].partition(" && exec ")
    assert shlex.split(serve)[-1] == "a b; $(rm -rf /) 'x'"


def test_the_crd_schema_refuses_an_unknown_field(exported):
    lws, _ = exported()
    lws["spec"]["leaderWorkerTemplate"]["groupSize"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(lws, lws_schema())
    lws, _ = exported()
    lws["spec"]["leaderWorkerTemplate"]["size"] = "3"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(lws, lws_schema())


def test_too_many_gpus_per_node_is_reported(cli, write, k8s_dir):
    d = k8s_dir()
    write("big.yaml", model_yaml("big", model_path="org/m", backend="vllm-cuda", nodes=2, distributed="ray",
                                 tensor_parallel_size=16, ray={"head": "a", "workers": ["b"]}))
    r = cli("export", "kubernetes", d)
    assert r.code == 1 and r.out == ""
    assert "big: not exported:" in r.err and "needs 16 GPUs but a node has at most" in r.err
