"""Memory terms of a llama.cpp context: KV cache cells and bytes, compute buffers.

KV cache (llama.cpp `llama_kv_cache`): one K and one V row of `n_embd_k_gqa` / `n_embd_v_gqa`
values per layer and cell, in the cache type's row size (quantised types round up to whole blocks).
Cells: `ctx_size` (0 = the model's context length) padded to 256; with several non-unified slots
(llama-server `--parallel N`), each slot gets ceil(ctx/N) padded to 256. A unified cache (the
default when `--parallel` is not given: 4 slots sharing one cache) holds ctx cells in total.
Checked against llama-server b11434 (`-c 3000` -> 3072 cells; `-c 4096 -np 3` -> 4608 cells).

Compute buffer (ggml-alloc's peak for the worst-case ubatch graph), fitted to llama-server's
`compute buffer size` lines over shapes that vary one dimension at a time (n_ff, n_embd, n_head,
n_head_kv, vocab, ubatch, ctx, experts; see bench/placement.py). Per device that holds layers,
in bytes, with ub = n_ubatch (default 512) and n_kv = KV cells:

    mask      = n_kv * ub * (2 if flash attention else 4)           # f16 / f32 KQ mask
    (n_kv: all cells of a unified cache, one slot's cells with --parallel N)
    ffn phase = ub * (12 * n_ff_active + 20 * n_embd)               # gate, up, gate*up + residuals
                (MoE, normalized expert weights: + ub * 4 * n_embd * n_expert_used)
    attn      = ub * (24 * n_embd + 8 * n_embd_kv)                  # q/k/v/out activations
                + (0 if flash attention else ub * n_kv * n_head * 4)  # the KQ matrix, f32
    compute   = mask + max(ffn phase, attn, recurrent phase)     # the last for hybrids: _recurrent_phase

n_ff_active counts experts actually used (n_ff_exp x n_expert_used; a shared expert is not added), and
the per-expert term is there only when llama.cpp normalizes the expert weights (_NORM_W): fitted on
moe-small, Granite-4.0-H-Tiny (with), DeepSeek-V2-Lite and gpt-oss-20b (without), each within 0.1 %. A device
that holds no layers but takes part (the host with everything offloaded) needs the embeddings
rows and the mask: ub * n_embd * 4 + mask. Logits: llama.cpp b11434 reserves one output per slot
(`n_outputs_max = n_seq`), n_vocab * n_seq * 4 bytes, in a separate host "output buffer".
"""

from __future__ import annotations

from dataclasses import dataclass

from xgen_declare.placement.attention import attention_of, recurrent_state_per_seq
from xgen_declare.placement.gguf_facts import GgufFacts, ggml_type_size

__all__ = ["ContextSettings", "CACHE_TYPES", "kv_cells", "swa_cells", "kv_bytes_per_layer", "rs_bytes_per_layer", "compute_bytes",
           "host_compute_bytes", "output_buffer_bytes", "n_ff_active"]

# Cache types llama-server accepts for --cache-type-k/-v
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
KV_PAD = 256


@dataclass(frozen=True)
class ContextSettings:
    """The llama-server settings that drive memory (None = llama-server's default)."""

    ctx_size: int | None = None  # None or 0: the model's own context length
    parallel: int | None = None  # None: llama-server's auto (4 slots, unified cache)
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: str = "auto"  # on | off | auto (auto = on: every backend we render supports it)
    n_ubatch: int = 512
    swa_full: bool = False  # llama-server --swa-full: windowed layers get as many cells as the others

    @property
    def flash(self) -> bool:
        return self.flash_attn != "off"

    @property
    def n_seq(self) -> int:
        return self.parallel or 4

    @property
    def unified(self) -> bool:
        return self.parallel is None


def _pad(n: int, to: int = KV_PAD) -> int:
    return -(-n // to) * to


def _n_ctx_seq(facts: GgufFacts, s: ContextSettings) -> int:
    """llama_context: n_ctx padded to 256; per stream n_ctx / n_seq padded again (non-unified)."""
    ctx = _pad(s.ctx_size or facts.context_length or 4096)
    if s.unified or s.n_seq == 1:
        return ctx
    return _pad(ctx // s.n_seq)


def _n_stream(s: ContextSettings) -> int:
    return 1 if s.unified else s.n_seq


def kv_cells(facts: GgufFacts, s: ContextSettings) -> int:
    """Cells of the (base) KV cache, all streams together."""
    return _n_ctx_seq(facts, s) * _n_stream(s)


def swa_cells(facts: GgufFacts, s: ContextSettings) -> int:
    """Cells of the sliding-window cache, all streams together (llama_kv_cache_iswa); 0 without one."""
    att = attention_of(facts)
    if not att.is_iswa:
        return 0
    base = _n_ctx_seq(facts, s)
    per_stream = base if s.swa_full else _pad(min(base, att.n_swa * (s.n_seq if s.unified else 1) + s.n_ubatch))
    return per_stream * _n_stream(s)


def kv_bytes_per_layer(facts: GgufFacts, s: ContextSettings) -> list[int]:
    return facts.memo(("kv_bytes_per_layer", s), lambda f: _kv_bytes_per_layer(f, s))


def _kv_bytes_per_layer(facts: GgufFacts, s: ContextSettings) -> list[int]:
    full, windowed = kv_cells(facts, s), swa_cells(facts, s)
    att = attention_of(facts)
    v_rows = [0] * facts.block_count if att.mla else facts.n_embd_v_gqa  # MLA: no V cache
    recurrent = att.recurrent or (False,) * facts.block_count  # a hybrid's recurrent layers keep no KV
    return [0 if recurrent[il] else
            (windowed if att.swa[il] else full) * (ggml_type_size(s.cache_type_k, k) + ggml_type_size(s.cache_type_v, v))
            for il, (k, v) in enumerate(zip(facts.n_embd_k_gqa, v_rows))]


def rs_bytes_per_layer(facts: GgufFacts, s: ContextSettings) -> list[int]:
    """Recurrent state ("RS buffer") of each layer: one state per sequence in each recurrent layer."""
    recurrent = attention_of(facts).recurrent
    if not recurrent:
        return [0] * facts.block_count
    per_seq = recurrent_state_per_seq(facts)
    return [per_seq * max(1, s.n_seq) if r else 0 for r in recurrent]


def n_ff_active(facts: GgufFacts) -> int:
    """Widest FFN activation of any layer: dense n_ff, or n_ff_exp x experts used."""
    return facts.memo("n_ff_active", _n_ff_active)


def _n_ff_active(facts: GgufFacts) -> int:
    widths: dict[int, int] = {}
    for t in facts.tensors:
        if t.layer is None or len(t.shape) < 2:
            continue
        if t.name.endswith(".ffn_up.weight"):
            widths[t.layer] = widths.get(t.layer, 0) + t.shape[1]
        elif t.name.endswith(".ffn_up_exps.weight"):
            widths[t.layer] = widths.get(t.layer, 0) + t.shape[1] * max(facts.expert_used_count, 1)
    if widths:
        return max(widths.values())
    ff = facts.metadata.get(f"{facts.architecture}.feed_forward_length", 4 * facts.embedding_length)
    return int(max(ff) if isinstance(ff, list) else ff)


def _graph_kv(facts: GgufFacts, s: ContextSettings) -> int:
    """KV cells one ubatch attends to: all of a unified cache, one slot's share otherwise."""
    cells = kv_cells(facts, s)
    return cells if s.unified else cells // s.n_seq


def _mask(n_kv: int, s: ContextSettings) -> int:
    return n_kv * s.n_ubatch * (2 if s.flash else 4)


def _masks(facts: GgufFacts, s: ContextSettings) -> int:
    """The KQ mask of the base cache, plus one of the sliding-window cache's cells for an iSWA model."""
    return _mask(_graph_kv(facts, s), s) + _mask(swa_cells(facts, s) // _n_stream(s), s)


# Whether llama.cpp normalizes the selected experts' weights (build_moe_ffn's norm_w) by architecture, when
# the GGUF has no <arch>.expert_weights_norm; measured: llama (Mixtral-style) and granitehybrid do,
# deepseek2 and gpt-oss do not. Unlisted MoE architectures keep the term (the larger prediction).
# Mamba-2 hybrids (their scan phase: _recurrent_phase)
MAMBA2_ARCHS = ("granitehybrid", "nemotron_h")

_NORM_W = {"llama": True, "granitemoe": True, "granitehybrid": True, "qwen3moe": True, "qwen2moe": False,
           "deepseek2": False, "gpt-oss": False, "jamba": False}


def _normalizes_experts(facts: GgufFacts) -> bool:
    """MoE layers whose per-expert outputs stay alive beside the FFN activations (fitted: the term is
    there exactly when the expert weights are normalized)."""
    if not facts.memo("has_experts", lambda f: any(t.name.endswith("_exps.weight") for t in f.tensors)):
        return False
    flag = facts.metadata.get(f"{facts.architecture}.expert_weights_norm")
    return flag if isinstance(flag, bool) else _NORM_W.get(facts.architecture, True)


def compute_bytes(facts: GgufFacts, s: ContextSettings) -> int:
    """Compute buffer of a device that holds at least one repeating layer."""
    n_kv, ub, n_embd = _graph_kv(facts, s), s.n_ubatch, facts.embedding_length
    ffn = ub * (12 * n_ff_active(facts) + 20 * n_embd)
    if _normalizes_experts(facts):
        ffn += ub * 4 * n_embd * max(facts.expert_used_count, 1)  # per-expert down outputs before the sum
    attn = ub * (24 * n_embd + 8 * max(facts.n_embd_k_gqa + [0]))
    if not s.flash:
        attn += ub * n_kv * max(facts.head_count + [0]) * 4
    return _masks(facts, s) + max(ffn, attn, _recurrent_phase(facts, s))


def _recurrent_phase(facts: GgufFacts, s: ContextSettings) -> int:
    """A recurrent layer's graph (hybrids), fitted; its mechanism is not modelled term by term.

    Mamba-2 scan (granitehybrid, nemotron_h): 31.2 bytes per token and d_inner value plus copies of one
    sequence's SSM state (d_state x d_inner f32, `S`): n_seq copies, and 2 n_seq - 1 once the states outweigh
    the scan's per-token output (n_seq x d_state > 1.6 x n_ubatch: ggml-alloc no longer fits the scan's
    output in a freed block). Fitted on the Nemotron-H shape (S = 5 MiB) at --parallel 1..8, 12, 16, unified
    or not, -ub 256/512/1024 (17 settings) and Granite-4.0-H-Tiny's (S = 1.5 MiB) at 7, each within 1.3 %;
    the two regimes meet between n_seq x d_state / n_ubatch = 1.5 (A) and 1.75 (B), both shapes d_state 128.
    Mamba-1 (jamba): 34 bytes per token and d_inner value (never the peak on the Jamba shape).
    Qwen3-Next's gated delta net: 42 bytes per token and d_inner value plus two copies of each sequence's
    state (d_state x d_inner f32): fitted on its shape at --parallel 1, 2, 4 and 8, unified or not (96.11 ...
    117.02 MiB, within 2.2 %; the slots matter here and not in the FFN phase: 4 slots cost 16 MiB more than 1).
    """
    if not any(attention_of(facts).recurrent):
        return 0
    d_inner, d_state = facts.ssm.get("inner_size", 0), facts.ssm.get("state_size", 0)
    state = 4 * d_state * d_inner  # one sequence's state in one layer, f32
    if facts.architecture == "qwen3next":
        return s.n_ubatch * 42 * d_inner + 2 * s.n_seq * state
    if facts.architecture in MAMBA2_ARCHS:
        n = max(1, s.n_seq)
        copies = 2 * n - 1 if 5 * n * d_state > 8 * s.n_ubatch else n
        return s.n_ubatch * d_inner * 312 // 10 + copies * state
    return s.n_ubatch * 34 * d_inner


def host_compute_bytes(facts: GgufFacts, s: ContextSettings) -> int:
    """Compute buffer of a participating device without repeating layers (host, output-only GPU)."""
    return s.n_ubatch * facts.embedding_length * 4 + _masks(facts, s)


def output_buffer_bytes(facts: GgufFacts, s: ContextSettings) -> int:
    return (facts.vocab_size or 0) * s.n_seq * 4
