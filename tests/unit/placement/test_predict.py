import pytest

from xgen_declare.placement.gguf_facts import GgufError, read_gguf_facts
from xgen_declare.placement.layers import OUTPUT_LAST
from xgen_declare.placement.memory import ContextSettings, compute_bytes, kv_cells
from xgen_declare.placement.predict import MIB, predict
from xgen_declare.testing.synthetic import Shape, write_sparse_gguf

CTX8K = ContextSettings(ctx_size=8192, parallel=1)


@pytest.fixture(scope="module")
def l8b(sparse):
    return read_gguf_facts(sparse("llama3-8b"))


def test_llama3_8b_kv_f16_8192_is_1024_mib(l8b):
    # 2 (K and V) x 32 layers x 8 KV heads x 128 x 8192 cells x 2 bytes
    p = predict(l8b, CTX8K, [0])
    assert p.kv_cache == 2 * 32 * 8 * 128 * 8192 * 2 == 1024 * MIB
    assert p.gpu(0).kv_cache == 1024 * MIB and p.cpu.kv_cache == 0


@pytest.mark.parametrize("ctk,ctv,mib", [("q8_0", "q8_0", 544), ("q4_0", "q4_0", 288), ("q8_0", "f16", 784),
                                         ("f32", "f32", 2048)])
def test_kv_cache_types(l8b, ctk, ctv, mib):
    # per cell and layer: 1024 values; q8_0 = 1024/32*34 bytes, q4_0 = 1024/32*18
    s = ContextSettings(ctx_size=8192, parallel=1, cache_type_k=ctk, cache_type_v=ctv)
    assert predict(l8b, s, [0]).kv_cache == mib * MIB


def test_kv_cells_padding_and_slots(l8b):
    assert kv_cells(l8b, ContextSettings(ctx_size=3000)) == 3072
    assert kv_cells(l8b, ContextSettings(ctx_size=4096, parallel=3)) == 4608  # 3 x pad(1366, 256)
    assert kv_cells(l8b, ContextSettings(ctx_size=4096, parallel=4)) == 4096
    assert kv_cells(l8b, ContextSettings(ctx_size=4096)) == 4096  # auto: 4 slots share one cache
    assert kv_cells(l8b, ContextSettings()) == 8192  # the model's context length


def test_full_offload_token_embd_stays_on_host(l8b):
    p = predict(l8b, CTX8K, [0], "all")
    embd = 128256 * 4096 * 2
    assert p.n_gpu_layers == 33 and p.gpu(0).layers == 33 and p.gpu(0).has_output
    assert p.cpu.weights == embd and p.cpu.layers == 0
    assert p.gpu(0).weights == l8b.weights_bytes - embd
    assert p.weights == l8b.weights_bytes


def test_partial_offload_output_first(l8b):
    p = predict(l8b, CTX8K, [0], 20)
    layer = l8b.layer_bytes()[0]
    out = 128256 * 4096 * 2 + 4096 * 4
    assert p.gpu(0).repeating_layers == 19 and p.gpu(0).has_output
    assert p.gpu(0).weights == 19 * layer + out
    assert p.gpu(0).kv_cache == 19 * 32 * MIB and p.cpu.kv_cache == 13 * 32 * MIB
    assert p.cpu.compute == compute_bytes(l8b, CTX8K)  # the host runs layers too


def test_partial_offload_output_last(l8b):
    p = predict(l8b, CTX8K, [0], 20, rule=OUTPUT_LAST)
    assert p.gpu(0).repeating_layers == 20 and not p.gpu(0).has_output and p.cpu.has_output


def test_compute_buffer_formula(l8b):
    ub, n_kv = 512, 8192
    fa_on = n_kv * ub * 2 + ub * (12 * 14336 + 20 * 4096)
    fa_off = n_kv * ub * 4 + ub * (24 * 4096 + 8 * 1024) + ub * n_kv * 32 * 4
    assert compute_bytes(l8b, CTX8K) == fa_on == 132 * MIB
    assert compute_bytes(l8b, ContextSettings(ctx_size=8192, flash_attn="off")) == fa_off


def test_two_gpus_even_split_70b(sparse):
    f = read_gguf_facts(sparse("llama3-70b", "Q4_K"))
    p = predict(f, CTX8K, [0, 1], -1, [1.0, 1.0])
    assert [g.layers for g in p.gpus] == [41, 40] and p.gpus[1].has_output
    assert p.gpus[0].kv_cache == 41 * 2 * 1024 * 8192 * 2  # 8 KV heads x 128 per layer, f16
    assert p.kv_cache == 2560 * MIB


def test_gqa_model_with_bias(sparse):
    f = read_gguf_facts(sparse("qwen2.5-7b"))
    p = predict(f, ContextSettings(ctx_size=32768, parallel=1), [0])
    assert p.kv_cache == 2 * 28 * 4 * 128 * 32768 * 2 == 1792 * MIB


def test_moe_compute_counts_active_experts(sparse):
    f = read_gguf_facts(sparse("mixtral-8x7b"))
    p = predict(f, ContextSettings(ctx_size=4096, parallel=1), [0])
    assert p.gpu(0).weights > 80 * 1024 * MIB  # every expert is resident
    ub = 512
    assert p.gpu(0).compute == 4096 * ub * 2 + ub * (12 * 14336 * 2 + 20 * 4096 + 4 * 4096 * 2)


def test_per_layer_kv_heads(sparse):
    f = read_gguf_facts(sparse("tiny", n_head_kv=[2, 0, 2, 4]))
    p = predict(f, ContextSettings(ctx_size=2048, parallel=1), [0])
    assert p.kv_cache == 2048 * 2 * 2 * (64 + 0 + 64 + 128)


def test_tied_embeddings_duplicated_on_gpu(sparse):
    f = read_gguf_facts(sparse("llama3.2-1b"))
    p = predict(f, ContextSettings(ctx_size=4096, parallel=1), [0])
    embd = 128256 * 2048 * 2
    assert p.gpu(0).weights == sum(f.layer_bytes()) + 2048 * 4 + embd
    assert p.cpu.weights == embd


def test_cpu_only(l8b):
    p = predict(l8b, CTX8K, [])
    assert p.gpus == [] and p.n_gpu_layers == 0 and p.cpu.weights == l8b.weights_bytes
    assert p.cpu.layers == 32 and p.cpu.kv_cache == 1024 * MIB


def test_unknown_architecture(tmp_path):
    path = write_sparse_gguf(tmp_path / "m.gguf", Shape("mamba", 2, 64, 1, 1, 128, 400), vocab=False)
    with pytest.raises(GgufError, match=r"m\.gguf: unknown architecture 'mamba': placement cannot be predicted"):
        predict(read_gguf_facts(str(path)), CTX8K, [0])
