"""What the objects say: GPUs and node affinity, probes and timings, secrets, volumes, and the args the
local renderer makes. Every object here is also validated strictly and round-tripped."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from tests.unit.export.conftest import load_stream, round_trip, validate_strict


@pytest.fixture
def export(cli, k8s_dir):
    def _export(extra_config: str = "", *args: str) -> dict[str, dict]:
        d = k8s_dir(extra_config)
        r = cli("export", "kubernetes", d, *args)
        assert r.code == 0, r.err
        objects = load_stream(r.out)
        for obj in objects:
            validate_strict(obj)
            assert round_trip(obj) == obj
        return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}

    return _export


def _container(objs: dict, name: str) -> dict:
    [c] = objs[f"Deployment/{name}"]["spec"]["template"]["spec"]["containers"]
    return c


def test_args_are_the_local_render_with_pod_overrides(cli, write, export, tmp_path):
    fake = tmp_path / "bin" / "llama-server"  # the local render needs a llama-server: this host's must not matter
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    write("xgen-declare.yaml", f"binaries: {{llama-server-cpu: {fake}}}\n")
    write("a.yaml", model_yaml("a", model_path="/models/sub/a.gguf", ctx_size=4096, port=9000))
    [local] = cli("render", str(write.root), "-o", "json").json()
    c = _container(export(), "a")
    assert c["command"] == ["/app/llama-server"]
    assert c["args"][:6] == ["--model", "/models/sub/a.gguf", "--host", "0.0.0.0", "--port", "9000"]
    # same renderer: the path is the same inside the pod here, so only the bind address differs
    assert [a if a != "127.0.0.1" else "0.0.0.0" for a in local["argv"][1:]] == c["args"]
    assert c["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]


def test_nvidia_constraints_become_gfd_node_affinity(write, export):
    write("a.yaml", """\
        apiVersion: xgen/v1
        kind: Model
        metadata:
          name: a
          annotations:
            xgen-declare/gpu-product: NVIDIA-H100-80GB-HBM3, NVIDIA-A100-SXM4-80GB
            xgen-declare/gpu-memory-mib: "81920"
        spec: {model_path: org/m, backend: vllm-cuda, tensor_parallel_size: 2}
        """)
    dep = export()["Deployment/a"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [
            {"key": "nvidia.com/gpu.product", "operator": "In",
             "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"]},
            {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["81919"]}]}]
    c = pod["containers"][0]
    assert c["resources"] == {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}
    assert c["image"] == "example.org/vllm:cuda" and c["command"] == ["vllm"] and c["args"][:2] == ["serve", "org/m"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]


def test_amd_constraints_become_node_labeller_affinity(write, export):
    write("a.yaml", """\
        apiVersion: xgen/v1
        kind: Model
        metadata:
          name: a
          annotations: {xgen-declare/gpu-family: AI, xgen-declare/gpu-vram: "192G,256G"}
        spec: {model_path: /models/a.gguf, backend: llama-server-rocm, gpus: [0, 1, 2]}
        """)
    objs = export()
    pod = objs["Deployment/a"]["spec"]["template"]["spec"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "amd.com/gpu.family", "operator": "In", "values": ["AI"]},
                              {"key": "amd.com/gpu.vram", "operator": "In", "values": ["192G", "256G"]}]}]
    c = pod["containers"][0]
    assert c["resources"]["limits"] == {"amd.com/gpu": "3"}
    assert c["image"] == "example.org/llama-server:rocm"
    # host GPU indices mean nothing in a pod: no ROCR_VISIBLE_DEVICES, the device plugin picks the GPUs
    assert "env" not in c


def test_vulkan_vendor_from_annotation_overrides_config(write, export):
    write("a.yaml", "apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: a\n  annotations:\n"
                    "    xgen-declare/gpu-vendor: amd\nspec: {model_path: /models/a.gguf}\n")
    write("b.yaml", model_yaml("b", model_path="/models/b.gguf"))
    objs = export()
    assert _container(objs, "a")["resources"]["limits"] == {"amd.com/gpu": "1"}
    assert "env" not in _container(objs, "a")
    b = _container(objs, "b")
    assert b["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert b["env"] == [{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility,graphics"}]


def test_cpu_model_probes_timings_and_no_gpu(write, export):
    write("e.yaml", model_yaml("e", model_path="/models/e.gguf", backend="llama-cpp-python", ready_timeout=95,
                               stop_grace=2.5, server_type="embedding", enabled=False))
    dep = export()["Deployment/e"]
    assert dep["spec"]["replicas"] == 0 and "strategy" not in dep["spec"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 3
    c = pod["containers"][0]
    assert c["command"] == ["/usr/bin/python3"] and c["args"][:2] == ["-m", "llama_cpp.server"]
    assert "resources" not in c and "affinity" not in pod
    http = {"path": "/v1/models", "port": "http"}
    assert c["startupProbe"] == {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 10}
    assert c["readinessProbe"] == {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    assert c["livenessProbe"] == {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}


def test_api_keys_come_from_secrets_never_args(write, export, tmp_path):
    key = tmp_path / "key.txt"
    key.write_text("sk-very-secret\n")
    write("l.yaml", model_yaml("l", model_path="/models/l.gguf", api_key_file=str(key)))
    write("v.yaml", model_yaml("v", model_path="org/m", backend="vllm-cuda", api_key_file=str(key)))
    objs = export("secret_env:\n  HF_TOKEN: {name: hf, key: token}\n")
    text = repr(objs)
    assert "sk-very-secret" not in text and str(key) not in text
    l_pod = objs["Deployment/l"]["spec"]["template"]["spec"]
    args = l_pod["containers"][0]["args"]
    assert args[args.index("--api-key-file") + 1] == "/var/run/secrets/xgen-declare/api-key/api-key"
    assert {"name": "api-key", "mountPath": "/var/run/secrets/xgen-declare/api-key", "readOnly": True} in \
        l_pod["containers"][0]["volumeMounts"]
    assert {"name": "api-key", "secret": {"secretName": "l-api-key", "items": [{"key": "api-key", "path": "api-key"}]}} \
        in l_pod["volumes"]
    v = _container(objs, "v")
    assert "--api-key-file" not in v["args"]
    assert v["env"] == [
        {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "v-api-key", "key": "api-key"}}},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]


def test_service_labels_namespace_and_host_path_volume(write, export):
    write("a.yaml", "apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: a\n  labels: {team: search}\n"
                    "spec: {model_path: /models/a.gguf, mlock: true}\n")
    objs = export("namespace: llm\n").copy()
    svc = objs["Service/a"]
    assert svc["metadata"] == {"name": "a", "namespace": "llm", "labels": {
        "team": "search", "app.kubernetes.io/name": "a", "app.kubernetes.io/managed-by": "xgen-declare"}}
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "a", "app.kubernetes.io/managed-by": "xgen-declare"}
    assert _container(objs, "a")["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}


def test_host_path_volume_and_mount_path(write, cli, k8s_dir):
    d = k8s_dir()
    (write.root / "xgen-declare.yaml").write_text(
        "kubernetes:\n  images: {llama-server: x/y}\n  gpu_vendor: nvidia\n"
        "  model_volume: {local_dir: /srv/gguf, mount_path: /m, host_path: /data/gguf, read_only: false}\n")
    write("a.yaml", model_yaml("a", model_path="/srv/gguf/a.gguf"))
    [dep, _] = load_stream(cli("export", "kubernetes", d).out)
    pod = dep["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "models", "hostPath": {"path": "/data/gguf", "type": "Directory"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "models", "mountPath": "/m", "readOnly": False}]
    assert pod["containers"][0]["args"][:2] == ["--model", "/m/a.gguf"]


def test_rewrite_removes_files_of_models_that_are_gone(cli, write, k8s_dir, tmp_path):
    d = k8s_dir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.yaml").write_text("kind: ConfigMap\n")
    write("a.yaml", model_yaml("a"))
    b = write("b.yaml", model_yaml("b"))
    assert cli("export", "kubernetes", d, "-o", str(out)).code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.yaml", "b.yaml", "kustomization.yaml", "mine.yaml"]
    b.unlink()
    assert cli("export", "kubernetes", d, "-o", str(out)).code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.yaml", "kustomization.yaml", "mine.yaml"]


def test_config_section_is_validated(cli, write):
    config = write.root / "xgen-declare.yaml"
    write("a.yaml", model_yaml("a"))
    config.write_text("kubernetes:\n  images: {llama-sever: x}\n")
    r = cli("export", "kubernetes", str(write.root))
    assert r.code == 1 and r.err.startswith(f"{config}:2: kubernetes.images: unknown backend(s) llama-sever (use a backend name")
    config.write_text("kubernetes:\n  model_volume: {local_dir: /m, claim: c, host_path: /d}\n")
    r = cli("export", "kubernetes", str(write.root))
    assert r.code == 1
    assert r.err == (f"{config}:2: kubernetes.model_volume: give exactly one of claim (a PersistentVolumeClaim) or "
                     "host_path (a node directory)\n")
