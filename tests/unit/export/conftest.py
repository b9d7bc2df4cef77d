"""Helpers for the Kubernetes export tests: offline schema validation and the typed-model round trip."""

from __future__ import annotations

import textwrap

import kubernetes_validate
import pytest
import yaml
from kubernetes.client import ApiClient

from tests.conftest import REPO

K8S_FIXTURES = REPO / "tests" / "fixtures" / "k8s"
EXAMPLES_CONFIG = K8S_FIXTURES / "xgen-declare.yaml"
# The oldest version we promise and the newest schemas kubernetes-validate ships.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
TYPED = {("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service"}

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
