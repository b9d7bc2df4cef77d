"""GPUs the host cannot give a model (an index it lacks; `tensor_split`, `main_gpu`, `tp x pp` beyond the
GPUs the model gets): the model is Blocked with the reason, and `render` for that host prints the same
error and exits 1 — render and plan never disagree about one model on one host."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml

INVENTORY = """apiVersion: xgen/v1
kind: Inventory
gpus:
""" + "".join(f"  - {{index: {i}, vendor: nvidia, name: GPU, type: nvidia, memory_total_mib: 81920, "
              f"memory_free_mib: 80000}}\n" for i in range(4)) + """backends:
  - {name: llama-server-cuda, available: true, binary: /opt/elsewhere/llama-server, dialect: new}
  - {name: vllm-cuda, available: true, binary: /opt/elsewhere/vllm}
"""

CASES = {
    "index": (dict(backend="llama-server-cuda", gpus=[0, 7]), 7, "spec.gpus[1]",
              "GPU 7 does not exist on this host (GPUs: 0, 1, 2, 3) (see `xgen-declare gpus`)"),
    "split": (dict(backend="llama-server-cuda", tensor_split=[1, 1, 1, 1, 1]), 7, "spec.tensor_split",
              "has 5 entries but llama-server-cuda gets 4 GPU(s) on this host (0, 1, 2, 3) (give at most one "
              "proportion per GPU, or list the GPUs to use in gpus)"),
    "main": (dict(backend="llama-server-cuda", main_gpu=4), 7, "spec.main_gpu",
             "is 4 but llama-server-cuda gets 4 GPU(s) on this host (0, 1, 2, 3) (main_gpu is a position among "
             "them: use 0..3, or list the GPUs to use in gpus)"),
    "tp": (dict(model_path="org/big", backend="vllm-cuda", tensor_parallel_size=4, pipeline_parallel_size=2), 8,
           "spec.tensor_parallel_size",
           "tensor_parallel_size x pipeline_parallel_size = 8 needs 8 GPUs but vllm-cuda gets 4 on this host "
           "(0, 1, 2, 3) (lower the sizes, or run it on a host with more GPUs)"),
}


@pytest.fixture
def host_file(tmp_path):
    inv = tmp_path / "host.yaml"
    inv.write_text(INVENTORY)
    return str(inv)


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_blocks_and_render_fails_with_the_same_error(cli, write, tmp_path, host_file, case):
    spec, line, field, message = CASES[case]
    path = write("a.yaml", model_yaml("a", **spec))
    write("ok.yaml", model_yaml("ok", backend="llama-server-cuda", gpus=[3]))
    error = f"{path}:{line}: {field}: {message}"
    state = ("--state-dir", str(tmp_path / "state"))

    r = cli(*state, "plan", str(write.root), "--inventory", host_file, "-o", "json")
    assert r.code == 0, r.err
    actions = {a["name"]: (a["kind"], a["reason"]) for a in r.json()["actions"]}
    assert actions == {"a": ("blocked", error), "ok": ("start", "new model")}

    r = cli(*state, "render", str(write.root), "--inventory", host_file, "-o", "json")
    assert r.code == 1
    assert [m["name"] for m in r.json()] == ["ok"]
    assert r.err.splitlines() == [error]

    r = cli("validate", str(write.root), "--inventory", host_file)  # the same check, the same words
    assert r.code == 1 and r.err.splitlines()[0] == error


def test_gpus_listed_are_checked_even_for_a_model_that_fits(cli, write, tmp_path, host_file):
    write("a.yaml", model_yaml("a", backend="llama-server-cuda", gpus=[2, 3], tensor_split=[1, 1], main_gpu=1))
    r = cli("--state-dir", str(tmp_path / "state"), "render", str(write.root), "--inventory", host_file, "-o", "json")
    assert r.code == 0, r.err
    [m] = r.json()
    assert m["env"]["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_fewer_proportions_than_gpus_is_llama_cpps_own_rule(cli, write, tmp_path, host_file):
    """Without gpus, tensor_split [3, 1] on 4 GPUs: llama.cpp gives GPUs 2 and 3 no layers; it runs."""
    write("a.yaml", model_yaml("a", backend="llama-server-cuda", tensor_split=[3, 1]))
    r = cli("--state-dir", str(tmp_path / "state"), "render", str(write.root), "--inventory", host_file, "-o", "json")
    assert r.code == 0, r.err
    argv = r.json()[0]["argv"]
    assert argv[argv.index("--tensor-split") + 1] == "3.0,1.0"
