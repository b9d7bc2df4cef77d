"""manifests/examples -> golden files; every object validates strictly (1.30 and the newest schemas) and
survives the kubernetes client's typed models. XGEN_UPDATE_GOLDEN=1 rewrites the golden files."""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO
from tests.unit.export.conftest import EXAMPLES_CONFIG, K8S_FIXTURES, VERSIONS, load_stream, round_trip, \
    validate_lws, validate_strict

GOLDEN = K8S_FIXTURES / "examples"
EXAMPLES = "manifests/examples"


@pytest.fixture
def exported(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the golden files name the manifests relative to the exported directory
    out = tmp_path / "out"
    r = cli("--config", str(EXAMPLES_CONFIG), "export", "kubernetes", EXAMPLES, "-o", str(out))
    assert r.code == 0, r.err
    *warnings, wrote = r.err.splitlines()
    assert wrote == f"wrote 7 file(s) to {out}: llama-3-3-70b.yaml, llama-405b.yaml, llama-70b-offload.yaml, " \
                    "llama-70b-split.yaml, qwen3-0-6b.yaml, qwen3-8b.yaml, kustomization.yaml"
    # the hub models: the pods download them, unpinned here (no state dir pins; export/hub.py, tests/unit/export/test_hub.py)
    assert [w.split(" is not pinned")[0].split(": the pod's")[0] for w in warnings] == [
        "llama-3-3-70b: manifests/examples/llama-3-3-70b-vllm-tp4.yaml:9: warning: spec.model_path: "
        "hf://meta-llama/Llama-3.3-70B-Instruct",
        "llama-405b: manifests/examples/llama-405b-ray.yaml:11: warning: spec.model_path: "
        "hf://meta-llama/Llama-3.1-405B-Instruct",
        "qwen3-0-6b: manifests/examples/qwen3-0-6b-from-hub.yaml:12: warning: spec.source"]
    return out


def test_golden_files(exported):
    produced = {p.name: p.read_text() for p in sorted(exported.iterdir())}
    if os.environ.get("XGEN_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for stale in GOLDEN.glob("*.yaml"):
            stale.unlink()
        for name, text in produced.items():
            (GOLDEN / name).write_text(text)
    golden = {p.name: p.read_text() for p in sorted(GOLDEN.glob("*.yaml"))}
    assert sorted(produced) == sorted(golden)
    for name in golden:
        assert produced[name] == golden[name], f"{name} differs from {GOLDEN / name} (XGEN_UPDATE_GOLDEN=1 rewrites)"


def test_every_object_validates_strictly_and_round_trips(exported):
    """Built-in kinds strictly against the Kubernetes schemas; the LeaderWorkerSet against its CRD and its
    pod templates (as PodTemplates) against the Kubernetes schemas (tests/unit/export/test_lws.py)."""
    kinds = []
    for path in sorted(exported.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for obj in load_stream(path.read_text()):
            kinds.append(obj["kind"])
            if obj["kind"] == "LeaderWorkerSet":
                assert validate_lws(obj) == [v.rsplit(".", 1)[0] for v in VERSIONS] * 2
                continue
            assert validate_strict(obj) == [v.rsplit(".", 1)[0] for v in VERSIONS]
            assert round_trip(obj) == obj
    assert kinds == ["Deployment", "Service", "LeaderWorkerSet", "Service"] + ["Deployment", "Service"] * 4


def test_kustomization_lists_every_model_file(exported):
    [kust] = load_stream((exported / "kustomization.yaml").read_text())
    assert kust == {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "llm",
                    "resources": ["llama-3-3-70b.yaml", "llama-405b.yaml", "llama-70b-offload.yaml", "llama-70b-split.yaml",
                                  "qwen3-0-6b.yaml", "qwen3-8b.yaml"]}
    assert "#   hf-token (key token)" in (exported / "kustomization.yaml").read_text()


def test_strict_validation_catches_an_unknown_field(exported):
    import kubernetes_validate

    [dep, _] = load_stream((exported / "qwen3-8b.yaml").read_text())
    dep["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, VERSIONS[0], strict=True)


def test_stream_equals_the_files(cli, exported, monkeypatch):
    monkeypatch.chdir(REPO)
    r = cli("--config", str(EXAMPLES_CONFIG), "export", "kubernetes", EXAMPLES)
    assert r.code == 0 and all(": warning: " in line for line in r.err.splitlines())  # as to files (above)
    files = [o for p in sorted(exported.glob("*.yaml")) if p.name != "kustomization.yaml"
             for o in load_stream(p.read_text())]
    assert load_stream(r.out) == files


def test_without_a_config_nothing_is_exported(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    r = cli("export", "kubernetes", EXAMPLES, "-o", str(out))
    assert r.code == 1 and not out.exists()
    lines = r.err.splitlines()
    assert lines[0] == ("llama-3-3-70b: not exported: manifests/examples/llama-3-3-70b-vllm-tp4.yaml:10: spec.backend: "
                        "backend vllm-cuda cannot run in the cluster: no image for it in kubernetes.images (add "
                        "`kubernetes: images: vllm-cuda: IMAGE` to xgen-declare.yaml)")
    assert lines[-1] == "nothing written: 6 model(s) cannot be exported; fix them or pass --partial"
