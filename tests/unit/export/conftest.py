"""Helpers for the Kubernetes export tests: offline schema validation and the typed-model round trip."""

from __future__ import annotations

import copy
import functools
import textwrap

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes.client import ApiClient

from tests.conftest import REPO

K8S_FIXTURES = REPO / "tests" / "fixtures" / "k8s"
EXAMPLES_CONFIG = K8S_FIXTURES / "xgen-declare.yaml"
# The oldest version we promise and the newest schemas kubernetes-validate ships.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
TYPED = {("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service",
         ("v1", "PodTemplate"): "V1PodTemplate"}
# The LeaderWorkerSet CRD (kubernetes-sigs/lws; the commit is in the file's header).
LWS_CRD = K8S_FIXTURES / "crds" / "leaderworkerset.x-k8s.io_leaderworkersets.yaml"

BASE_CONFIG = """
kubernetes:
  images:
    llama-server: example.org/llama-server:vulkan
    llama-server-cuda: example.org/llama-server:cuda
    llama-server-rocm: example.org/llama-server:rocm
    llama-cpp-python: {image: example.org/llama-cpp-python:cpu, command: /usr/bin/python3}
    vllm: example.org/vllm:cuda
    vllm-rocm: example.org/vllm:rocm
  model_volume: {local_dir: /models, claim: models}
  gpu_vendor: nvidia
"""


def load_stream(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def validate_strict(obj: dict) -> list[str]:
    """Validates `obj` strictly against every version in VERSIONS; returns the versions checked."""
    return [kubernetes_validate.validate(obj, v, strict=True) for v in VERSIONS]


def _strict(schema: dict) -> dict:
    """The CRD schema with unknown fields refused (additionalProperties: false on every object schema that
    lists its properties), like `kubectl apply --validate=strict`; the API server would silently prune them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def lws_schema() -> dict:
    [crd] = load_stream(LWS_CRD.read_text())
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return _strict(v1["schema"]["openAPIV3Schema"])


def validate_lws(obj: dict) -> list[str]:
    """A LeaderWorkerSet: against its CRD's openAPIV3Schema (strict, jsonschema), then its leader and worker
    pod templates wrapped in PodTemplates, strictly for every version in VERSIONS and through the typed
    model. Returns the versions checked (leader's, then worker's)."""
    jsonschema.validate(obj, lws_schema())
    checked = []
    group = obj["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                   "metadata": {"name": f"{obj['metadata']['name']}-{role.lower()}"},
                   "template": copy.deepcopy(group[role])}
        checked += validate_strict(wrapped)
        assert round_trip(wrapped) == wrapped
    return checked


def round_trip(obj: dict) -> dict:
    """Through the kubernetes client's typed model and back to plain data."""
    client = ApiClient()
    typed = client._ApiClient__deserialize(obj, TYPED[(obj["apiVersion"], obj["kind"])])
    return client.sanitize_for_serialization(typed)


@pytest.fixture
def k8s_dir(write):
    """write.root with an xgen-declare.yaml holding BASE_CONFIG (+ extra YAML appended under kubernetes:)."""

    def _config(extra: str = "") -> str:
        text = textwrap.dedent(BASE_CONFIG).lstrip("\n") + textwrap.indent(textwrap.dedent(extra), "  ")
        (write.root / "xgen-declare.yaml").write_text(text)
        return str(write.root)

    return _config
