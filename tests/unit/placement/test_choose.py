import pytest

from xgen_declare.placement.choose import GpuBudget, choose, fits, usable_bytes
from xgen_declare.placement.gguf_facts import read_gguf_facts
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import MIB, predict

CTX8K = ContextSettings(ctx_size=8192, parallel=1)


def test_usable_memory():
    assert usable_bytes(24576, 20000) == (20000 - 1024) * MIB
    assert usable_bytes(24576, None, ours_running_mib=4096) == (24576 - 4096 - 1024) * MIB
    # live free memory already excludes our running models: min() does not subtract them twice
    assert usable_bytes(24576, 20000, ours_running_mib=4000) == (20000 - 1024) * MIB
    # the model being restarted is added back
    assert usable_bytes(24576, 10000, ours_running_mib=14000, restarting_mib=9000) == (19000 - 1024) * MIB
    assert usable_bytes(None, None) is None
    assert usable_bytes(8192, 512) == 0


@pytest.fixture(scope="module")
def l8b(sparse):
    return read_gguf_facts(sparse("llama3-8b"))


def test_everything_fits_on_a_24g_gpu(l8b):
    p = choose(l8b, CTX8K, [GpuBudget(0, usable_bytes(24564, 24000))])
    assert p.n_gpu_layers == 33 and p.gpus[0].fits


def test_largest_layer_count_that_fits(l8b):
    budget = [GpuBudget(0, 8 * 1024 * MIB)]
    p = choose(l8b, CTX8K, budget)
    assert fits(p, budget)
    assert not fits(predict(l8b, CTX8K, [0], p.n_gpu_layers + 1), budget)
    assert 0 < p.n_gpu_layers < 33


def test_nothing_fits(l8b):
    p = choose(l8b, CTX8K, [GpuBudget(0, 100 * MIB)])
    assert p.n_gpu_layers == 0 and "0 layers offloaded" in p.notes[-1]


def test_auto_split_two_unequal_gpus(sparse):
    f = read_gguf_facts(sparse("llama3-70b", "Q4_K"))
    budgets = [GpuBudget(0, usable_bytes(24564, 24000)), GpuBudget(1, usable_bytes(12282, 12000))]
    p = choose(f, CTX8K, budgets)
    assert fits(p, budgets) and p.tensor_split == [float(g.layers) for g in p.gpus]
    assert not fits(predict(f, CTX8K, [0, 1], p.n_gpu_layers + 1,
                            _best_split(f, budgets, p.n_gpu_layers + 1)), budgets)


def _best_split(f, budgets, ngl):
    from xgen_declare.placement.choose import _fitting_split
    return _fitting_split(f, CTX8K, budgets, ngl, "output_first") or [1.0, 1.0]


def test_auto_split_two_equal_gpus_balanced(sparse):
    f = read_gguf_facts(sparse("llama3-70b", "Q4_K"))
    budgets = [GpuBudget(0, usable_bytes(24564, 24000)), GpuBudget(1, usable_bytes(24564, 24000))]
    p = choose(f, CTX8K, budgets)
    assert p.n_gpu_layers == 81 and p.tensor_split == [41.0, 40.0]


def test_explicit_values_are_kept(l8b):
    p = choose(l8b, CTX8K, [GpuBudget(0, 8 * 1024 * MIB)], n_gpu_layers=33)
    assert p.n_gpu_layers == 33 and p.gpus[0].fits is False


def test_integrated_gpu_shares_the_host_pool(l8b):
    # a 16 GiB shared pool: weights + KV + compute of GPU and host together must fit
    pool = [GpuBudget(0, 20 * 1024 * MIB, integrated=True)]
    p = choose(l8b, CTX8K, pool)
    assert p.n_gpu_layers == 33  # offloading does not change the pool total
    small = [GpuBudget(0, 12 * 1024 * MIB, integrated=True)]
    assert not fits(choose(l8b, CTX8K, small), small)
