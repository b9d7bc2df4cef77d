"""Layer tables of the hybrid designs beyond Granite 4.0-H, for synthetic.py's sparse GGUFs.

Names and shapes follow llama.cpp's loaders (src/models/<arch>.cpp `load_arch_tensors`) and gguf-py's
MODEL_TENSORS; numpy order (out, in), as synthetic.py writes them.

* Qwen3-Next (`qwen3next`): every `full_attention_interval`-th layer is gated attention (Q projection
  twice as wide: query + gate; Q/K norms), the others a gated delta net (the legacy `ssm_in` qkvz
  projection, conv1d over q/k/v, `ssm_ba`); every layer MoE + a gated shared expert.
* Nemotron-H (`nemotron_h`): per-layer `head_count_kv` and `feed_forward_length` say which layer is
  what: Mamba-2 (both 0), attention (kv > 0, ff 0) or a ReLU^2 MLP (ff > 0, no gate).
* LFM2 (`lfm2`): short-convolution layers (`shortconv.*`) where head_count_kv is 0, attention with Q/K
  norms elsewhere; every layer a dense gated FFN; the final norm is `token_embd_norm`.
* Jamba (`jamba`): Mamba-1 layers (`ssm_x`, `ssm_dt`, B/C/dt norms) where head_count_kv is 0,
  attention elsewhere; MoE on odd layers, a dense FFN on even ones.
"""

from __future__ import annotations

__all__ = ["HYBRID_LAYERS"]


def _qwen3next_layers(s, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    from gguf import GGMLQuantizationType as T

    d_conv, d_inner, d_state, n_v_heads, n_k_heads = s.ssm
    interval = max(s.extra["qwen3next.full_attention_interval"][0], 1)  # 0: a corrupt file, for tests
    hd, kv, e, ff, sh = s.head_dim, s.n_head_kv, s.n_expert, s.n_ff_exp, s.n_ff_shexp
    key_dim, value_dim = d_state * n_k_heads, d_inner
    out: list[tuple[str, tuple[int, ...], object]] = []
    for i in range(s.n_layer):
        p = f"blk.{i}"
        out += [(f"{p}.attn_norm.weight", (s.n_embd,), T.F32), (f"{p}.post_attention_norm.weight", (s.n_embd,), T.F32)]
        if (i + 1) % interval == 0:  # gated attention
            out += [(f"{p}.attn_q.weight", (2 * s.n_head * hd, s.n_embd), wtype),
                    (f"{p}.attn_k.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_v.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_output.weight", (s.n_embd, s.n_head * hd), wtype),
                    (f"{p}.attn_q_norm.weight", (hd,), T.F32), (f"{p}.attn_k_norm.weight", (hd,), T.F32)]
        else:  # gated delta net
            out += [(f"{p}.ssm_in.weight", (2 * key_dim + 2 * value_dim, s.n_embd), wtype),
                    (f"{p}.ssm_conv1d.weight", (2 * key_dim + value_dim, d_conv), T.F32),
                    (f"{p}.ssm_dt.bias", (n_v_heads,), T.F32), (f"{p}.ssm_a", (n_v_heads,), T.F32),
                    (f"{p}.ssm_ba.weight", (2 * n_v_heads, s.n_embd), wtype),
                    (f"{p}.ssm_norm.weight", (d_inner // n_v_heads,), T.F32),
                    (f"{p}.ssm_out.weight", (s.n_embd, value_dim), wtype)]
        out += [(f"{p}.ffn_gate_inp.weight", (e, s.n_embd), T.F32),
                (f"{p}.ffn_gate_exps.weight", (e, ff, s.n_embd), wtype),
                (f"{p}.ffn_up_exps.weight", (e, ff, s.n_embd), wtype),
                (f"{p}.ffn_down_exps.weight", (e, s.n_embd, ff), wtype),
                (f"{p}.ffn_gate_inp_shexp.weight", (s.n_embd,), T.F32),
                (f"{p}.ffn_gate_shexp.weight", (sh, s.n_embd), wtype),
                (f"{p}.ffn_up_shexp.weight", (sh, s.n_embd), wtype),
                (f"{p}.ffn_down_shexp.weight", (s.n_embd, sh), wtype)]
    return out


def mamba2_tensors(p: str, ssm: tuple[int, ...], n_embd: int, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    """One Mamba-2 layer's tensors (llama.cpp's LLM_ARCH_MAMBA2 / GRANITE_HYBRID / NEMOTRON_H layout)."""
    from gguf import GGMLQuantizationType as T

    d_conv, d_inner, d_state, n_ssm_head, n_group = ssm
    conv = d_inner + 2 * n_group * d_state
    return [(f"{p}.ssm_in.weight", (2 * d_inner + 2 * n_group * d_state + n_ssm_head, n_embd), wtype),
            (f"{p}.ssm_conv1d.weight", (conv, d_conv), T.F32), (f"{p}.ssm_conv1d.bias", (conv,), T.F32),
            (f"{p}.ssm_dt.bias", (n_ssm_head,), T.F32), (f"{p}.ssm_a", (n_ssm_head, 1), T.F32),
            (f"{p}.ssm_d", (n_ssm_head, 1), T.F32), (f"{p}.ssm_norm.weight", (n_group, d_inner // n_group), T.F32),
            (f"{p}.ssm_out.weight", (n_embd, d_inner), wtype)]


def _nemotron_h_layers(s, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    from gguf import GGMLQuantizationType as T

    hd = s.head_dim
    out: list[tuple[str, tuple[int, ...], object]] = []
    for i in range(s.n_layer):
        p, kv, ff = f"blk.{i}", s.n_head_kv[i], s.n_ff[i]
        out.append((f"{p}.attn_norm.weight", (s.n_embd,), T.F32))
        if kv == 0 and ff == 0:  # Mamba-2
            out += mamba2_tensors(p, s.ssm, s.n_embd, wtype)
        elif ff == 0:  # attention
            out += [(f"{p}.attn_q.weight", (s.n_head * hd, s.n_embd), wtype),
                    (f"{p}.attn_k.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_v.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_output.weight", (s.n_embd, s.n_head * hd), wtype)]
        else:  # ReLU^2 MLP, no gate
            out += [(f"{p}.ffn_up.weight", (ff, s.n_embd), wtype), (f"{p}.ffn_down.weight", (s.n_embd, ff), wtype)]
    return out


def _lfm2_layers(s, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    from gguf import GGMLQuantizationType as T

    l_cache = s.extra["lfm2.shortconv.l_cache"][0]
    hd = s.head_dim or s.n_embd // s.n_head
    out: list[tuple[str, tuple[int, ...], object]] = []
    for i in range(s.n_layer):
        p, kv = f"blk.{i}", s.n_head_kv[i]
        out += [(f"{p}.attn_norm.weight", (s.n_embd,), T.F32), (f"{p}.ffn_norm.weight", (s.n_embd,), T.F32),
                (f"{p}.ffn_gate.weight", (s.n_ff, s.n_embd), wtype), (f"{p}.ffn_up.weight", (s.n_ff, s.n_embd), wtype),
                (f"{p}.ffn_down.weight", (s.n_embd, s.n_ff), wtype)]
        if kv:  # attention with Q/K norms
            out += [(f"{p}.attn_q_norm.weight", (hd,), T.F32), (f"{p}.attn_k_norm.weight", (hd,), T.F32),
                    (f"{p}.attn_q.weight", (s.n_embd, s.n_embd), wtype),
                    (f"{p}.attn_k.weight", (kv * hd, s.n_embd), wtype), (f"{p}.attn_v.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_output.weight", (s.n_embd, s.n_embd), wtype)]
        else:  # short convolution
            out += [(f"{p}.shortconv.conv.weight", (s.n_embd, l_cache), T.F32),
                    (f"{p}.shortconv.in_proj.weight", (3 * s.n_embd, s.n_embd), wtype),
                    (f"{p}.shortconv.out_proj.weight", (s.n_embd, s.n_embd), wtype)]
    return out


def _jamba_layers(s, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    """Jamba: Mamba-1 where head_count_kv is 0; MoE on odd layers (expert_layer_period 2, offset 1)."""
    from gguf import GGMLQuantizationType as T

    d_conv, d_inner, d_state, dt_rank, _ = s.ssm
    hd = s.n_embd // s.n_head
    out: list[tuple[str, tuple[int, ...], object]] = []
    for i in range(s.n_layer):
        p, kv = f"blk.{i}", s.n_head_kv[i]
        out.append((f"{p}.attn_norm.weight", (s.n_embd,), T.F32))
        if kv == 0:
            out += [(f"{p}.ssm_in.weight", (2 * d_inner, s.n_embd), wtype),
                    (f"{p}.ssm_conv1d.weight", (d_inner, d_conv), T.F32), (f"{p}.ssm_conv1d.bias", (d_inner,), T.F32),
                    (f"{p}.ssm_x.weight", (dt_rank + 2 * d_state, d_inner), wtype),
                    (f"{p}.ssm_dt_norm.weight", (dt_rank,), T.F32),
                    (f"{p}.ssm_dt.weight", (d_inner, dt_rank), wtype), (f"{p}.ssm_dt.bias", (d_inner,), T.F32),
                    (f"{p}.ssm_b_norm.weight", (d_state,), T.F32), (f"{p}.ssm_c_norm.weight", (d_state,), T.F32),
                    (f"{p}.ssm_a", (d_inner, d_state), T.F32), (f"{p}.ssm_d", (d_inner,), T.F32),
                    (f"{p}.ssm_out.weight", (s.n_embd, d_inner), wtype)]
        else:
            out += [(f"{p}.attn_q.weight", (s.n_embd, s.n_embd), wtype),
                    (f"{p}.attn_k.weight", (kv * hd, s.n_embd), wtype), (f"{p}.attn_v.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_output.weight", (s.n_embd, s.n_embd), wtype)]
        out.append((f"{p}.ffn_norm.weight", (s.n_embd,), T.F32))
        if i % 2 == 1:
            out += [(f"{p}.ffn_gate_inp.weight", (s.n_expert, s.n_embd), T.F32),
                    (f"{p}.ffn_gate_exps.weight", (s.n_expert, s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_up_exps.weight", (s.n_expert, s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_down_exps.weight", (s.n_expert, s.n_embd, s.n_ff), wtype)]
        else:
            out += [(f"{p}.ffn_gate.weight", (s.n_ff, s.n_embd), wtype), (f"{p}.ffn_up.weight", (s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_down.weight", (s.n_embd, s.n_ff), wtype)]
    return out


HYBRID_LAYERS = {"qwen3next": _qwen3next_layers, "nemotron_h": _nemotron_h_layers, "lfm2": _lfm2_layers,
                 "jamba": _jamba_layers}
