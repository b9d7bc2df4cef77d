"""`--n-cpu-moe N` as a placement choice: the expert weights of layers 0..N-1 stay in host memory
(common/arg.cpp's override `blk.<i>.ffn_(up|down|gate|gate_up)_(ch|)exps` -> CPU); `auto` is the
smallest N with which every layer fits the GPU(s). Pure: sparse Mixtral-8x7B-shaped facts."""

import pytest

from xgen_declare.placement.choose import GpuBudget, choose, fits, usable_bytes
from xgen_declare.placement.gguf_facts import read_gguf_facts
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import MIB, expert_bytes_per_layer, predict

CTX8K = ContextSettings(ctx_size=8192, parallel=1)


@pytest.fixture(scope="module")
def mixtral(sparse):
    return read_gguf_facts(sparse("mixtral-8x7b", "Q4_0"))


def test_n_cpu_moe_moves_the_first_layers_experts_to_the_host(mixtral):
    experts = expert_bytes_per_layer(mixtral)
    assert experts[0] == 3 * 8 * 14336 * 4096 // 32 * 18  # gate, up, down x 8 experts, q4_0
    base = predict(mixtral, CTX8K, [0], "all")
    p = predict(mixtral, CTX8K, [0], "all", n_cpu_moe=5)
    assert p.n_cpu_moe == 5 and p.cpu_moe_bytes == 5 * experts[0]
    assert p.gpu(0).weights == base.gpu(0).weights - 5 * experts[0]
    assert p.cpu.weights == base.cpu.weights + 5 * experts[0]
    assert p.weights == base.weights and p.gpu(0).kv_cache == base.gpu(0).kv_cache  # KV stays with its layer


def test_layers_already_on_the_host_move_nothing(mixtral):
    p = predict(mixtral, CTX8K, [0], 10, n_cpu_moe=5)  # layers 0..22 are on the host anyway
    assert p.cpu_moe_bytes == 0 and p.n_cpu_moe == 0


def test_auto_picks_the_fewest_layers_that_let_everything_fit(mixtral):
    budget = [GpuBudget(0, usable_bytes(24564, 24000))]
    without = choose(mixtral, CTX8K, budget)
    assert without.n_gpu_layers < 33  # a 24 GB GPU cannot hold all of Mixtral Q4_0 with its experts
    p = choose(mixtral, CTX8K, budget, n_cpu_moe="auto")
    assert p.n_gpu_layers == 33 and fits(p, budget) and p.n_cpu_moe > 0
    assert not fits(predict(mixtral, CTX8K, [0], "all", n_cpu_moe=p.n_cpu_moe - 1), budget)


def test_auto_on_a_dense_model_or_without_gpus_is_off(sparse, mixtral):
    l8b = read_gguf_facts(sparse("llama3-8b"))
    budget = [GpuBudget(0, usable_bytes(24564, 24000))]
    assert choose(l8b, CTX8K, budget, n_cpu_moe="auto").n_cpu_moe == 0
    assert choose(mixtral, CTX8K, [], n_cpu_moe="auto").n_cpu_moe == 0


def test_auto_when_even_all_experts_on_the_host_do_not_fit(mixtral):
    small = [GpuBudget(0, 2048 * MIB)]
    # 2 GiB: every layer's experts stay on the host, and then 32 of 33 layers fit (3 without --n-cpu-moe)
    assert choose(mixtral, CTX8K, small).n_gpu_layers == 3
    p = choose(mixtral, CTX8K, small, n_cpu_moe="auto")
    assert fits(p, small) and p.n_gpu_layers == 32 and p.n_cpu_moe == 32
    assert p.cpu_moe_bytes == 31 * expert_bytes_per_layer(mixtral)[0]  # the 31 offloaded repeating layers
