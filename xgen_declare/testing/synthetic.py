"""Sparse GGUF files of realistic shapes, for tests and the accuracy bench.

The header, the metadata and the tensor table are real; the data region is a hole (the file is
truncated to its full length, so it reads as zeros and occupies almost no disk). llama-server loads
such a file like any other (zero weights), which lets the bench compare our prediction with the
buffer sizes llama.cpp itself logs, without downloading a model.

Shapes in `SHAPES` follow the published configs (Llama-3-8B / 70B, Qwen2.5-7B, Mixtral-8x7B, a
1B-class Llama-3.2); weights are written in one type (`weight_type`), norms in f32.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from xgen_declare.testing.synthetic_hybrid import HYBRID_LAYERS, mamba2_tensors

__all__ = ["Shape", "SHAPES", "write_sparse_gguf"]


@dataclass(frozen=True)
class Shape:
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int | list[int]
    n_ff: int | list[int]  # per layer for Nemotron-H (0: no MLP)
    n_vocab: int
    n_ctx_train: int = 8192
    head_dim: int | None = None
    n_expert: int = 0
    n_expert_used: int = 0
    tied_embeddings: bool = False
    attn_bias: bool = False
    extra: dict = field(default_factory=dict)
    # MLA (DeepSeek-V2/V3): (kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim); with it n_ff is
    # the leading dense layers' width, n_ff_exp the experts', and the first n_dense_lead layers are dense
    mla: tuple[int, int, int, int] | None = None
    n_ff_exp: int = 0
    n_expert_shared: int = 0
    n_dense_lead: int = 0
    # Mamba-2 layers (hybrid: Granite 4.0-H): (d_conv, d_inner, d_state, n_ssm_head, n_group); the layers
    # with n_head_kv 0 are the recurrent ones; n_ff_shexp: the shared expert's width
    ssm: tuple[int, int, int, int, int] | None = None
    n_ff_shexp: int = 0
    qk_norm: bool = False  # per-head RMS norms of Q and K (Qwen3): attn_q_norm / attn_k_norm of head_dim

    def with_(self, **changes) -> "Shape":
        return replace(self, **changes)


_NEMOTRON_H_9B = "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-"  # hybrid_override_pattern

SHAPES: dict[str, Shape] = {
    "llama3-8b": Shape("llama", 32, 4096, 32, 8, 14336, 128256),
    "llama3-70b": Shape("llama", 80, 8192, 64, 8, 28672, 128256),
    "llama3.2-1b": Shape("llama", 16, 2048, 32, 8, 8192, 128256, 131072, tied_embeddings=True),
    "qwen2.5-7b": Shape("qwen2", 28, 3584, 28, 4, 18944, 152064, 32768, attn_bias=True),
    "mixtral-8x7b": Shape("llama", 32, 4096, 32, 8, 14336, 32000, 32768, n_expert=8, n_expert_used=2),
    "moe-small": Shape("llama", 16, 2048, 16, 4, 768, 32000, 32768, head_dim=128, n_expert=32,
                       n_expert_used=4),
    "tiny": Shape("llama", 4, 256, 8, 2, 512, 1024, 2048),
    # DeepSeek-V2-Lite (MLA, converted as llama.cpp does today: one latent "KV head" of 512 + 64 rope dims)
    # Granite-4.0-H-Tiny (hybrid): 36 Mamba-2 layers + 4 attention layers, 64 experts (6 used) + a shared one
    "granite-4.0-h-tiny": Shape("granitehybrid", 40, 1536, 12, [0] * 5 + [4] + [0] * 9 + [4] + [0] * 9 + [4]
                                + [0] * 9 + [4] + [0] * 4, 512, 100352, 131072, head_dim=128, n_expert=64,
                                n_expert_used=6, tied_embeddings=True, ssm=(4, 3072, 128, 48, 1), n_ff_shexp=1024),
    # gpt-oss-20b: 24 layers alternating 128-token windows and full attention, 32 experts (4 used), biases,
    # attention sinks (the real file keeps experts in MXFP4; written here in the chosen weight type)
    "gpt-oss-20b": Shape("gpt-oss", 24, 2880, 64, 8, 2880, 201088, 131072, head_dim=64, n_expert=32,
                         n_expert_used=4, extra={"gpt-oss.attention.sliding_window": (128, "UINT32"),
                                                 "gpt-oss.expert_feed_forward_length": (2880, "UINT32")}),
    "deepseek-v2-lite": Shape("deepseek2", 27, 2048, 16, 1, 10944, 102400, 163840, n_expert=64, n_expert_used=6,
                              mla=(512, 128, 64, 128), n_ff_exp=1408, n_expert_shared=2, n_dense_lead=1),
    # Gemma 3 270M's metadata (the --real-model demo's GGUF): 18 layers, 5 windowed : 1 global, window 512
    # Qwen3-30B-A3B: 48 layers, 128 experts (8 used) of width 768, head_dim 128 (> n_embd / n_head), Q/K norms
    "qwen3-30b-a3b": Shape("qwen3moe", 48, 2048, 32, 4, 768, 151936, 40960, head_dim=128, n_expert=128,
                           n_expert_used=8, qk_norm=True,
                           extra={"qwen3moe.expert_feed_forward_length": (768, "UINT32")}),
    # Qwen3-Next-80B-A3B: 36 gated-delta-net layers + 12 gated-attention ones (every 4th), 512 experts (10 used)
    # + a shared one; ssm = (conv kernel, inner = value heads x head dim, key head dim, value heads, key heads)
    "qwen3-next-80b-a3b": Shape("qwen3next", 48, 2048, 16, 2, 5120, 151936, 262144, head_dim=256, n_expert=512,
                                n_expert_used=10, ssm=(4, 4096, 128, 32, 16), n_ff_exp=512, n_ff_shexp=512,
                                extra={"qwen3next.full_attention_interval": (4, "UINT32"),
                                       "qwen3next.expert_feed_forward_length": (512, "UINT32")}),
    # Nemotron-Nano-9B-v2 (nemotron_h): 27 Mamba-2 layers (M), 4 attention layers (*), 25 ReLU^2 MLP layers (-)
    "nemotron-h-9b": Shape("nemotron_h", 56, 4480, 40, [8 if c == "*" else 0 for c in _NEMOTRON_H_9B],
                           [15680 if c == "-" else 0 for c in _NEMOTRON_H_9B], 131072, 131072, head_dim=128,
                           ssm=(4, 10240, 128, 128, 8), extra={"nemotron_h.attention.layer_norm_epsilon": (1e-5, "FLOAT32")}),
    # LFM2-1.2B: 10 short-convolution layers (kernel 3) + 6 attention layers (2, 5, 8, 10, 12, 14)
    "lfm2-1.2b": Shape("lfm2", 16, 2048, 32, [8 if i in (2, 5, 8, 10, 12, 14) else 0 for i in range(16)], 8192, 65536,
                       128000, tied_embeddings=True, extra={"lfm2.shortconv.l_cache": (3, "UINT32")}),
    # Jamba-Mini-1.5: 28 Mamba-1 layers + attention on layers 4, 12, 20, 28 (period 8, offset 4); 16 experts
    # (2 used) on odd layers; ssm = (d_conv, d_inner, d_state, dt_rank, no groups)
    "jamba-mini": Shape("jamba", 32, 4096, 32, [8 if i % 8 == 4 else 0 for i in range(32)], 14336, 65536, 262144,
                        n_expert=16, n_expert_used=2, ssm=(4, 8192, 16, 256, 0)),
    "gemma3-270m": Shape("gemma3", 18, 640, 4, 1, 2048, 262144, 32768, head_dim=256, tied_embeddings=True,
                         extra={"gemma3.attention.sliding_window": (512, "UINT32")}),
}


def _tensors(s: Shape, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    """(name, numpy-order shape (out, in), ggml type) for every tensor, in llama.cpp's naming."""
    from gguf import GGMLQuantizationType as T

    hd = s.head_dim or s.n_embd // s.n_head
    out: list[tuple[str, tuple[int, ...], object]] = [("token_embd.weight", (s.n_vocab, s.n_embd), wtype)]
    if s.arch in HYBRID_LAYERS:
        return out + HYBRID_LAYERS[s.arch](s, wtype) + _output(s, wtype)
    if s.mla:
        return out + _mla_layers(s, wtype) + _output(s, wtype)
    if s.ssm:
        return out + _hybrid_layers(s, wtype) + _output(s, wtype)
    if s.arch == "gpt-oss":
        return out + _gpt_oss_layers(s, wtype) + _output(s, wtype)
    for i in range(s.n_layer):
        kv = s.n_head_kv[i] if isinstance(s.n_head_kv, list) else s.n_head_kv
        p = f"blk.{i}"
        out += [(f"{p}.attn_norm.weight", (s.n_embd,), T.F32),
                (f"{p}.attn_q.weight", (s.n_head * hd, s.n_embd), wtype),
                (f"{p}.attn_k.weight", (kv * hd, s.n_embd), wtype),
                (f"{p}.attn_v.weight", (kv * hd, s.n_embd), wtype),
                (f"{p}.attn_output.weight", (s.n_embd, s.n_head * hd), wtype),
                (f"{p}.ffn_norm.weight", (s.n_embd,), T.F32)]
        if s.qk_norm:
            out += [(f"{p}.attn_q_norm.weight", (hd,), T.F32), (f"{p}.attn_k_norm.weight", (hd,), T.F32)]
        if s.attn_bias:
            out += [(f"{p}.attn_q.bias", (s.n_head * hd,), T.F32), (f"{p}.attn_k.bias", (kv * hd,), T.F32),
                    (f"{p}.attn_v.bias", (kv * hd,), T.F32)]
        if s.n_expert:
            out += [(f"{p}.ffn_gate_inp.weight", (s.n_expert, s.n_embd), T.F32),
                    (f"{p}.ffn_gate_exps.weight", (s.n_expert, s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_up_exps.weight", (s.n_expert, s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_down_exps.weight", (s.n_expert, s.n_embd, s.n_ff), wtype)]
        else:
            out += [(f"{p}.ffn_gate.weight", (s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_up.weight", (s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_down.weight", (s.n_embd, s.n_ff), wtype)]
    return out + _output(s, wtype)


def _output(s: Shape, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    from gguf import GGMLQuantizationType as T

    norm = "token_embd_norm.weight" if s.arch == "lfm2" else "output_norm.weight"  # LFM2's final norm
    out: list[tuple[str, tuple[int, ...], object]] = [(norm, (s.n_embd,), T.F32)]
    if not s.tied_embeddings:
        out.append(("output.weight", (s.n_vocab, s.n_embd), wtype))
    return out


def _gpt_oss_layers(s: Shape, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    from gguf import GGMLQuantizationType as T

    hd, kv, e, ff = s.head_dim or s.n_embd // s.n_head, s.n_head_kv, s.n_expert, s.n_ff
    assert isinstance(kv, int)
    out: list[tuple[str, tuple[int, ...], object]] = []
    for i in range(s.n_layer):
        p = f"blk.{i}"
        out += [(f"{p}.attn_norm.weight", (s.n_embd,), T.F32),
                (f"{p}.attn_q.weight", (s.n_head * hd, s.n_embd), wtype), (f"{p}.attn_q.bias", (s.n_head * hd,), T.F32),
                (f"{p}.attn_k.weight", (kv * hd, s.n_embd), wtype), (f"{p}.attn_k.bias", (kv * hd,), T.F32),
                (f"{p}.attn_v.weight", (kv * hd, s.n_embd), wtype), (f"{p}.attn_v.bias", (kv * hd,), T.F32),
                (f"{p}.attn_output.weight", (s.n_embd, s.n_head * hd), wtype),
                (f"{p}.attn_output.bias", (s.n_embd,), T.F32), (f"{p}.attn_sinks.weight", (s.n_head,), T.F32),
                (f"{p}.post_attention_norm.weight", (s.n_embd,), T.F32),
                (f"{p}.ffn_gate_inp.weight", (e, s.n_embd), T.F32), (f"{p}.ffn_gate_inp.bias", (e,), T.F32),
                (f"{p}.ffn_gate_exps.weight", (e, ff, s.n_embd), wtype), (f"{p}.ffn_gate_exps.bias", (e, ff), T.F32),
                (f"{p}.ffn_up_exps.weight", (e, ff, s.n_embd), wtype), (f"{p}.ffn_up_exps.bias", (e, ff), T.F32),
                (f"{p}.ffn_down_exps.weight", (e, s.n_embd, ff), wtype),
                (f"{p}.ffn_down_exps.bias", (e, s.n_embd), T.F32)]
    return out


def _hybrid_layers(s: Shape, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    """Granite 4.0-H's layers: Mamba-2 where n_head_kv is 0, attention elsewhere; MoE + shared expert."""
    from gguf import GGMLQuantizationType as T

    hd = s.head_dim or s.n_embd // s.n_head
    out: list[tuple[str, tuple[int, ...], object]] = []
    for i in range(s.n_layer):
        p = f"blk.{i}"
        kv = s.n_head_kv[i] if isinstance(s.n_head_kv, list) else s.n_head_kv
        out.append((f"{p}.attn_norm.weight", (s.n_embd,), T.F32))
        if kv == 0:
            out += mamba2_tensors(p, s.ssm, s.n_embd, wtype)  # type: ignore[arg-type]
        else:
            out += [(f"{p}.attn_q.weight", (s.n_head * hd, s.n_embd), wtype),
                    (f"{p}.attn_k.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_v.weight", (kv * hd, s.n_embd), wtype),
                    (f"{p}.attn_output.weight", (s.n_embd, s.n_head * hd), wtype)]
        out += [(f"{p}.ffn_norm.weight", (s.n_embd,), T.F32),
                (f"{p}.ffn_gate_inp.weight", (s.n_expert, s.n_embd), T.F32),
                (f"{p}.ffn_gate_exps.weight", (s.n_expert, s.n_ff, s.n_embd), wtype),
                (f"{p}.ffn_up_exps.weight", (s.n_expert, s.n_ff, s.n_embd), wtype),
                (f"{p}.ffn_down_exps.weight", (s.n_expert, s.n_embd, s.n_ff), wtype),
                (f"{p}.ffn_gate_shexp.weight", (s.n_ff_shexp, s.n_embd), wtype),
                (f"{p}.ffn_up_shexp.weight", (s.n_ff_shexp, s.n_embd), wtype),
                (f"{p}.ffn_down_shexp.weight", (s.n_embd, s.n_ff_shexp), wtype)]
    return out


def _mla_layers(s: Shape, wtype) -> list[tuple[str, tuple[int, ...], object]]:
    """DeepSeek-V2-Lite's layers (no q LoRA): latent KV projection, per-head k_b / v_b, dense lead + MoE."""
    from gguf import GGMLQuantizationType as T

    rank, nope, rope, v = s.mla  # type: ignore[misc]
    out: list[tuple[str, tuple[int, ...], object]] = []
    for i in range(s.n_layer):
        p = f"blk.{i}"
        out += [(f"{p}.attn_norm.weight", (s.n_embd,), T.F32),
                (f"{p}.attn_q.weight", (s.n_head * (nope + rope), s.n_embd), wtype),
                (f"{p}.attn_kv_a_mqa.weight", (rank + rope, s.n_embd), wtype),
                (f"{p}.attn_kv_a_norm.weight", (rank,), T.F32),
                (f"{p}.attn_k_b.weight", (s.n_head, rank, nope), wtype),
                (f"{p}.attn_v_b.weight", (s.n_head, v, rank), wtype),
                (f"{p}.attn_output.weight", (s.n_embd, s.n_head * v), wtype),
                (f"{p}.ffn_norm.weight", (s.n_embd,), T.F32)]
        if i < s.n_dense_lead:
            out += [(f"{p}.ffn_gate.weight", (s.n_ff, s.n_embd), wtype), (f"{p}.ffn_up.weight", (s.n_ff, s.n_embd), wtype),
                    (f"{p}.ffn_down.weight", (s.n_embd, s.n_ff), wtype)]
            continue
        sh = s.n_ff_exp * s.n_expert_shared
        out += [(f"{p}.ffn_gate_inp.weight", (s.n_expert, s.n_embd), T.F32),
                (f"{p}.ffn_gate_exps.weight", (s.n_expert, s.n_ff_exp, s.n_embd), wtype),
                (f"{p}.ffn_up_exps.weight", (s.n_expert, s.n_ff_exp, s.n_embd), wtype),
                (f"{p}.ffn_down_exps.weight", (s.n_expert, s.n_embd, s.n_ff_exp), wtype),
                (f"{p}.ffn_gate_shexp.weight", (sh, s.n_embd), wtype), (f"{p}.ffn_up_shexp.weight", (sh, s.n_embd), wtype),
                (f"{p}.ffn_down_shexp.weight", (s.n_embd, sh), wtype)]
    return out


def _nbytes(shape: tuple[int, ...], ggml_type) -> int:
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[ggml_type]
    n = 1
    for d in shape:
        n *= d
    return n // block * size


def write_sparse_gguf(path: str | Path, shape: Shape | str, weight_type: str = "F16",
                      vocab: bool = True) -> Path:
    """Write `shape` (a Shape or a key of SHAPES) as a sparse GGUF at `path`; returns the path.

    With `vocab`, a byte-fallback SentencePiece vocabulary padded to n_vocab is included so that
    llama-server can load the file; without it the header stays tiny (enough for prediction tests).
    """
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter, LlamaFileType

    s = SHAPES[shape] if isinstance(shape, str) else shape
    wtype = GGMLQuantizationType[weight_type.upper()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(str(path), s.arch)
    w.add_name(f"sparse-{s.arch}-{s.n_layer}L")
    w.add_file_type(getattr(LlamaFileType, f"MOSTLY_{weight_type.upper()}", LlamaFileType.MOSTLY_F16))
    w.add_context_length(s.n_ctx_train)
    w.add_embedding_length(s.n_embd)
    w.add_block_count(s.n_layer)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    hd = s.head_dim or s.n_embd // s.n_head
    if s.ssm:
        d_conv, d_inner, d_state, n_ssm_head, n_group = s.ssm
        for key, value in (("conv_kernel", d_conv), ("inner_size", d_inner), ("state_size", d_state),
                           ("time_step_rank", n_ssm_head), ("group_count", n_group)):
            w.add_uint32(f"{s.arch}.ssm.{key}", value)
        w.add_uint32(f"{s.arch}.expert_shared_feed_forward_length", s.n_ff_shexp)
    if s.mla:
        _add_mla(w, s)
    elif s.head_dim:
        w.add_key_length(hd)
        w.add_value_length(hd)
    if not s.mla:
        w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(s.n_vocab)
    if s.n_expert:
        w.add_expert_count(s.n_expert)
        w.add_expert_used_count(s.n_expert_used)
    for key, (value, vtype) in s.extra.items():
        w.add_key_value(key, value, GGUFValueType[vtype] if isinstance(vtype, str) else vtype)
    if vocab:
        _add_vocab(w, s.n_vocab)
    for name, tshape, ttype in _tensors(s, wtype):
        w.add_tensor_info(name, tshape, np.dtype(np.float32), _nbytes(tshape, ttype), raw_dtype=ttype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    align = w.data_alignment
    data_start = -(-path.stat().st_size // align) * align
    data = sum(-(-ti.nbytes // align) * align for ti in w.tensors[0].values())
    with open(path, "r+b") as f:
        f.truncate(data_start + data)
    return path


def _add_mla(w, s: Shape) -> None:
    """MLA metadata as convert_hf_to_gguf.py writes it today: the cache holds one latent row of
    kv_lora_rank + rope dims ("key_length"), the per-head sizes go in the *_mla keys."""
    rank, nope, rope, v = s.mla  # type: ignore[misc]
    a = s.arch
    w.add_uint32(f"{a}.attention.kv_lora_rank", rank)
    w.add_key_length(rank + rope)
    w.add_value_length(rank)
    w.add_uint32(f"{a}.attention.key_length_mla", nope + rope)
    w.add_uint32(f"{a}.attention.value_length_mla", v)
    w.add_rope_dimension_count(rope)
    w.add_uint32(f"{a}.leading_dense_block_count", s.n_dense_lead)
    w.add_uint32(f"{a}.expert_feed_forward_length", s.n_ff_exp)
    w.add_uint32(f"{a}.expert_shared_count", s.n_expert_shared)
    w.add_float32(f"{a}.expert_weights_scale", 1.0)


def _add_vocab(w, n_vocab: int) -> None:
    from xgen_declare.tools.tinygguf import build_vocab

    tokens, scores, types = build_vocab()
    extra = n_vocab - len(tokens)
    if extra < 0:
        raise ValueError(f"n_vocab must be at least {len(tokens)}")
    tokens += [f"<pad_{i}>" for i in range(extra)]
    scores += [-1e4] * extra
    types += [4] * extra  # USER_DEFINED: never produced by the tokenizer's merges
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
