"""`n_cpu_moe: auto | all | N` (llama-server --n-cpu-moe): the exact messages a user sees for a bad value or a
backend that has no such flag."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from xgen_declare.manifests.load import load_paths


def problems_of(write, text: str) -> list[str]:
    write("m.yaml", text)
    return [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems]


@pytest.mark.parametrize("value", ["auto", "all", 0, 12])
def test_auto_or_a_count_is_valid(write, value):
    assert problems_of(write, model_yaml(n_cpu_moe=value)) == []


@pytest.mark.parametrize("value", [-1, "ALL", "none", 1.5, True, None])
def test_a_bad_value_names_the_field_and_gives_an_example(write, value):
    assert problems_of(write, model_yaml(n_cpu_moe=value)) == [
        "6: spec.n_cpu_moe: must be auto, all or a layer count >= 0 (0 = off), e.g. n_cpu_moe: auto, "
        "n_cpu_moe: all or n_cpu_moe: 12"]


def test_default_is_off(write):
    write("m.yaml", model_yaml())
    assert load_paths([str(write.root)]).models[0].spec.n_cpu_moe == 0


def test_llama_cpp_python_has_no_n_cpu_moe(write):
    assert problems_of(write, model_yaml(backend="llama-cpp-python", n_cpu_moe="auto")) == [
        "7: spec.n_cpu_moe: only applies to llama-server backends, llama-cpp-python has no --n-cpu-moe "
        "(remove it or use a llama-server backend, e.g. backend: auto)"]


def test_llama_cpp_python_has_no_cpu_moe_either(write):
    assert problems_of(write, model_yaml(backend="llama-cpp-python", n_cpu_moe="all")) == [
        "7: spec.n_cpu_moe: only applies to llama-server backends, llama-cpp-python has no --n-cpu-moe "
        "(remove it or use a llama-server backend, e.g. backend: auto)"]


def test_vllm_models_have_no_n_cpu_moe(write):
    assert problems_of(write, model_yaml(model_path="org/model", n_cpu_moe=4)) == [
        "7: spec.n_cpu_moe: only applies to llama.cpp backends and would be ignored here (remove it)"]


@pytest.mark.parametrize("value", ["auto", "all", 12])
def test_a_hub_repository_takes_auto_all_or_a_count(write, value):
    """`auto` with a hub repository is placed from the hub's metadata or the fetched file (the store fetches it
    before the model starts): tests/unit/desired/test_cpu_moe_hub.py."""
    assert problems_of(write, model_yaml(model_path="org/model-GGUF:Q4_K_M", n_cpu_moe=value)) == []
    assert problems_of(write, model_yaml(model_path=None, source="hf://org/model-GGUF@main/m.gguf",
                                         n_cpu_moe=value)) == []
