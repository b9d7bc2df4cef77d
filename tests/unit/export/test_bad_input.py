"""Models that cannot be expressed: a per-model error on stderr, exit 1, and nothing written (or, with
--partial, the rest plus a kustomization.yaml that says INCOMPLETE)."""

from __future__ import annotations

from tests.conftest import model_yaml
from tests.unit.export.conftest import load_stream


def _errors(r) -> list[str]:
    return [line for line in r.err.splitlines() if ": not exported: " in line]


def test_image_missing_for_a_backend(cli, write, k8s_dir):
    d = k8s_dir()
    (write.root / "xgen-declare.yaml").write_text("kubernetes:\n  images: {vllm: example.org/vllm}\n"
                                                  "  model_volume: {local_dir: /models, claim: m}\n")
    write("a.yaml", model_yaml("a", backend="llama-server-cuda"))
    r = cli("export", "kubernetes", d)
    assert r.code == 1 and r.out == ""
    assert _errors(r) == [f"a: not exported: {d}/a.yaml:6: spec.backend: backend llama-server-cuda cannot run in the "
                          "cluster: no image for it in kubernetes.images (add `kubernetes: images: llama-server-cuda: "
                          "IMAGE` to xgen-declare.yaml)"]


def test_auto_backend_without_any_image(cli, write, k8s_dir):
    d = k8s_dir()
    (write.root / "xgen-declare.yaml").write_text("kubernetes:\n  images: {vllm: example.org/vllm}\n")
    write("a.yaml", model_yaml("a"))
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    [err] = _errors(r)
    assert err.startswith(f"a: not exported: {d}/a.yaml:5: spec.backend: no backend available for a GGUF file: "
                          "llama-server-vulkan: no image for it in kubernetes.images;")


def test_host_path_without_model_volume(cli, write, k8s_dir):
    d = k8s_dir()
    (write.root / "xgen-declare.yaml").write_text("kubernetes:\n  images: {llama-server: example.org/ls}\n"
                                                  "  gpu_vendor: amd\n")
    write("a.yaml", model_yaml("a", model_path="/srv/models/a.gguf"))
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert _errors(r) == [f"a: not exported: {d}/a.yaml:6: spec.model_path: /srv/models/a.gguf is a path on this "
                          "host and a pod cannot see it: no kubernetes.model_volume is configured (set "
                          "kubernetes.model_volume (local_dir + claim or host_path) in xgen-declare.yaml)"]


def test_host_path_outside_the_model_volume_and_relative_paths(cli, write, k8s_dir):
    d = k8s_dir()
    write("a.yaml", model_yaml("a", model_path="/srv/other/a.gguf"))
    write("b.yaml", model_yaml("b", model_path="b.gguf"))  # relative to the manifest: a host path too
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert _errors(r) == [
        f"a: not exported: {d}/a.yaml:6: spec.model_path: /srv/other/a.gguf is a path on this host and a pod cannot "
        "see it: it is outside kubernetes.model_volume.local_dir (/models) (set kubernetes.model_volume (local_dir + "
        "claim or host_path) in xgen-declare.yaml)",
        f"b: not exported: {d}/b.yaml:6: spec.model_path: {d}/b.gguf is a path on this host and a pod cannot see "
        "it: it is outside kubernetes.model_volume.local_dir (/models) (set kubernetes.model_volume (local_dir + "
        "claim or host_path) in xgen-declare.yaml)"]


def test_model_too_big_for_a_node_is_not_expressible(cli, write, k8s_dir):
    d = k8s_dir()
    write("big.yaml", model_yaml("big", model_path="meta-llama/Llama-3.1-405B-Instruct", backend="vllm-cuda",
                                 tensor_parallel_size=8, pipeline_parallel_size=2))
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert _errors(r) == [
        f"big: not exported: {d}/big.yaml:1: spec: needs 16 GPUs but a node has at most (kubernetes.max_gpus_per_node) "
        "8; a vLLM model can span nodes with nodes + distributed: ray (a LeaderWorkerSet) (lower gpus / "
        "tensor_parallel_size x pipeline_parallel_size, or spread it over nodes (docs/ray.md, docs/kubernetes.md))"]


def test_inventory_bounds_gpus_per_node_and_backends(cli, write, k8s_dir):
    from tests.conftest import REPO

    d = k8s_dir()
    write("tp4.yaml", model_yaml("tp4", model_path="org/m", backend="vllm-cuda", tensor_parallel_size=4))
    write("rocm.yaml", model_yaml("rocm", backend="llama-server-rocm"))
    r = cli("export", "kubernetes", d, "--inventory", str(REPO / "examples" / "inventories" / "2xa100.yaml"))
    assert r.code == 1
    assert _errors(r) == [
        f"rocm: not exported: {d}/rocm.yaml:6: spec.backend: backend llama-server-rocm cannot run in the cluster: "
        "unavailable on the nodes: no AMD GPU (pick another backend)",
        f"tp4: not exported: {d}/tp4.yaml:1: spec: needs 4 GPUs but the --inventory's node has 2; a vLLM model "
        "can span nodes with nodes + distributed: ray (a LeaderWorkerSet) (lower gpus / tensor_parallel_size x "
        "pipeline_parallel_size, or spread it over nodes (docs/ray.md, docs/kubernetes.md))"]


def test_vulkan_without_a_vendor(cli, write, k8s_dir):
    d = k8s_dir()
    (write.root / "xgen-declare.yaml").write_text(
        "kubernetes:\n  images: {llama-server: example.org/ls}\n  model_volume: {local_dir: /models, claim: m}\n")
    write("a.yaml", model_yaml("a"))
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert _errors(r) == [f"a: not exported: {d}/a.yaml:3: metadata.annotations.xgen-declare/gpu-vendor: "
                          "llama-server-vulkan runs on NVIDIA and AMD GPUs and nothing says which this model gets "
                          "(annotate the manifest with xgen-declare/gpu-vendor: nvidia|amd, or set "
                          "kubernetes.gpu_vendor)"]


def test_bad_gpu_annotations(cli, write, k8s_dir):
    d = k8s_dir()
    write("a.yaml", """\
        apiVersion: xgen/v1
        kind: Model
        metadata:
          name: a
          annotations:
            xgen-declare/gpu-prodcut: NVIDIA-H100-80GB-HBM3
            xgen-declare/gpu-vram: 64G
            xgen-declare/gpu-memory-mib: lots
        spec:
          model_path: /models/a.gguf
          backend: llama-server-cuda
        """)
    write("b.yaml", """\
        apiVersion: xgen/v1
        kind: Model
        metadata:
          name: b
          annotations: {xgen-declare/gpu-memory-mib: "65536", xgen-declare/gpu-vendor: nvidia}
        spec: {model_path: /models/b.gguf, backend: llama-server-rocm}
        """)
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert _errors(r) == [
        f"a: not exported: {d}/a.yaml:6: metadata.annotations.xgen-declare/gpu-prodcut: unknown GPU constraint "
        "(did you mean `xgen-declare/gpu-product`?)",
        f"a: not exported: {d}/a.yaml:8: metadata.annotations.xgen-declare/gpu-memory-mib: is 'lots'; give the "
        "minimum memory per GPU in MiB, e.g. \"81920\"",
        f"a: not exported: {d}/a.yaml:7: metadata.annotations.xgen-declare/gpu-vram: applies to amd GPUs but this "
        "model runs on nvidia (remove it)",
        f"b: not exported: {d}/b.yaml:5: metadata.annotations.xgen-declare/gpu-vendor: is nvidia but "
        "llama-server-rocm runs on amd GPUs (remove it or change spec.backend)"]


def test_literal_secret_env_and_bad_names(cli, write, k8s_dir):
    d = k8s_dir()
    write("a.yaml", model_yaml("a", env={"HF_TOKEN": "hf_abc"}))
    write("b.yaml", model_yaml("9b"))
    write("c.yaml", "apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: c\n  labels: {team: 'a b'}\n"
                    "spec: {model_path: /models/c.gguf}\n")
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert _errors(r) == [
        f"9b: not exported: {d}/b.yaml:4: metadata.name: `9b` cannot name a Kubernetes Service (a DNS-1035 label: "
        "starts with a letter, ends with a letter or digit) (rename the model)",
        f"a: not exported: {d}/a.yaml:6: spec.env.HF_TOKEN: looks like a secret and would be written literally into "
        "the Deployment (map it to a Secret in kubernetes.secret_env: HF_TOKEN: {name: ..., key: ...})",
        f"c: not exported: {d}/c.yaml:5: metadata.labels.team: `a b` is not a valid Kubernetes label value (at most "
        "63 letters, digits, '-', '_', '.') (Kubernetes label rules: https://kubernetes.io/docs/concepts/overview/"
        "working-with-objects/labels/#syntax-and-character-set)"]
    assert "hf_abc" not in r.out + r.err


def test_invalid_manifest_is_reported_per_model(cli, write, k8s_dir):
    d = k8s_dir()
    write("a.yaml", model_yaml("a", n_gpu_layer=3))
    r = cli("export", "kubernetes", d)
    assert r.code == 1
    assert _errors(r) == [f"a: not exported: {d}/a.yaml:6: spec.n_gpu_layer: unknown field `n_gpu_layer` "
                          "(did you mean `n_gpu_layers`?)"]


def test_nothing_written_unless_partial(cli, write, k8s_dir, tmp_path):
    d = k8s_dir()
    write("good.yaml", model_yaml("good"))
    write("bad.yaml", model_yaml("bad", backend="vllm-cpu", model_path="org/m"))
    (write.root / "xgen-declare.yaml").write_text(
        (write.root / "xgen-declare.yaml").read_text().replace("    vllm: example.org/vllm:cuda\n", ""))
    out = tmp_path / "out"
    r = cli("export", "kubernetes", d, "-o", str(out))
    assert r.code == 1 and not out.exists()
    assert r.err.splitlines()[-1] == "nothing written: 1 model(s) cannot be exported; fix them or pass --partial"
    r = cli("export", "kubernetes", d, "-o", str(out), "--partial")
    assert r.code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good.yaml", "kustomization.yaml"]
    text = (out / "kustomization.yaml").read_text()
    assert "# INCOMPLETE: not exported (see the errors of the export): bad\n" in text
    assert load_stream(text)[0]["resources"] == ["good.yaml"]
    r = cli("export", "kubernetes", d, "--partial")
    assert r.code == 1
    assert "# INCOMPLETE: not exported (see the errors of the export): bad\n" in r.out
    assert [o["metadata"]["name"] for o in load_stream(r.out)] == ["good", "good"]


def test_missing_path_is_a_problem_outside_any_model(cli, k8s_dir, tmp_path):
    d = k8s_dir()
    r = cli("export", "kubernetes", d, str(tmp_path / "nope"))
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines() == [f"{tmp_path / 'nope'}: no such file or directory (check the path)",
                                  "nothing written: 1 problem(s) outside any model; fix them or pass --partial"]
