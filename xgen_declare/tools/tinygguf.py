"""Write a tiny random-weight llama-architecture GGUF file for tests.

The file is small (well under 1 MB with the defaults) and loads in both
llama.cpp's ``llama-server`` and ``llama-cpp-python`` (``python -m
llama_cpp.server``), so the supervisor can be exercised end to end without
downloading a real model.  The weights are random but *deterministic*: the same
arguments (including ``seed``) always produce byte-identical files.

Layout
------
* architecture ``llama`` (2 layers by default, ``n_embd`` 64, head_dim 32,
  grouped-query attention not used, SwiGLU FFN, RMSNorm), all tensors f32;
* SentencePiece-style vocabulary (``tokenizer.ggml.model = "llama"``) with
  354 tokens::

      0          <unk>                 UNKNOWN
      1          <s>   (BOS)           CONTROL
      2          </s>  (EOS)           CONTROL
      3..258     <0x00> .. <0xFF>      BYTE  (byte fallback for any input)
      259        "\u2581" (space)      NORMAL
      260..353   "!" .. "~"            NORMAL (printable ASCII)

* a ChatML chat template (``tokenizer.chat_template``), recognised by
  llama-server (``chatml``) and llama-cpp-python (``chatml``), so
  ``/v1/chat/completions`` works on both;
* with ``n_expert=E`` (>= 2) each layer's FFN is a Mixtral-style mixture of E experts (2 used per token):
  ``ffn_gate_inp`` + ``ffn_(gate|up|down)_exps``, the tensors llama-server's ``--n-cpu-moe N`` keeps in
  host memory;
* with ``embedding=True`` the file also sets ``llama.pooling_type = MEAN`` so
  ``/v1/embeddings`` returns one pooled vector of length ``n_embd`` per input
  (llama-server ``--embedding --pooling mean``; llama-cpp-python
  ``--embedding true``).

Keeping the output printable
----------------------------
Random weights would otherwise happily sample lone UTF-8 continuation bytes,
BOS/UNK, or EOS (which would end generation after zero tokens).  To keep the
generated text printable ASCII and make generation always run to
``max_tokens``, the residual stream carries a constant "bias" channel:
dimension 0 of every token embedding is 1.0 and no layer writes into it (row 0
of ``attn_output`` and ``ffn_down`` is zero), so after the final RMSNorm that
channel is a positive constant.  ``output.weight[:, 0]`` is -40 for special and
byte tokens and 0 for the printable tokens, which acts as a logit bias that
removes the former from sampling.

Only ``numpy`` and ``gguf`` are required.

CLI::

    python -m xgen_declare.tools.tinygguf OUT.gguf [--embedding]
        [--n-embd 64] [--n-layer 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["write_tiny_gguf", "build_vocab", "CHATML_TEMPLATE", "main"]

#: The exact ChatML template string that llama-cpp-python maps to its built-in
#: ``chatml`` chat format (llama_cpp.llama_chat_format.CHATML_CHAT_TEMPLATE);
#: llama-server detects it via ``<|im_start|>``.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# gguf.TokenType values (kept literal so build_vocab() needs no gguf import).
_TT_NORMAL, _TT_UNKNOWN, _TT_CONTROL, _TT_BYTE = 1, 2, 3, 6

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
_N_BYTE = 256
_FIRST_NORMAL = 3 + _N_BYTE  # 259: the SentencePiece space token

_LOGIT_SUPPRESS = -40.0


def build_vocab() -> tuple[list[str], list[float], list[int]]:
    """Return ``(tokens, scores, token_types)`` of the byte-level SPM vocabulary."""
    tokens: list[str] = ["<unk>", "<s>", "</s>"]
    types: list[int] = [_TT_UNKNOWN, _TT_CONTROL, _TT_CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(_N_BYTE)]
    types += [_TT_BYTE] * _N_BYTE
    tokens.append("\u2581")  # SentencePiece word boundary, decoded as " "
    types.append(_TT_NORMAL)
    tokens += [chr(c) for c in range(0x21, 0x7F)]
    types += [_TT_NORMAL] * (0x7F - 0x21)
    scores = [0.0] * len(tokens)
    # Give normal tokens decreasing scores (SPM merge priority; harmless here).
    for i in range(_FIRST_NORMAL, len(tokens)):
        scores[i] = -float(i - _FIRST_NORMAL)
    return tokens, scores, types


def write_tiny_gguf(
    path: str | Path,
    *,
    embedding: bool = False,
    n_embd: int = 64,
    n_layer: int = 2,
    seed: int = 0,
    n_expert: int = 0,
) -> Path:
    """Write a tiny deterministic llama GGUF to ``path`` and return it as a Path.

    ``embedding=True`` marks the model for mean pooling (for ``/v1/embeddings``;
    the returned vectors have length ``n_embd``).  ``n_embd`` must be a positive
    multiple of 32 (head_dim is fixed at 32).
    """
    import gguf  # imported lazily so the module can be inspected without it

    if n_embd < 32 or n_embd % 32:
        raise ValueError(f"n_embd must be a positive multiple of 32, got {n_embd}")
    if n_layer < 1:
        raise ValueError(f"n_layer must be >= 1, got {n_layer}")
    if n_expert == 1 or n_expert < 0:
        raise ValueError(f"n_expert must be 0 (dense) or >= 2, got {n_expert}")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    head_dim = 32
    n_head = n_embd // head_dim
    n_ff = 2 * n_embd
    n_ctx = 2048
    tokens, scores, types = build_vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def rand(*shape: int, std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    arch = "llama"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("xgen-tiny-embed" if embedding else "xgen-tiny")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    if n_expert:
        w.add_expert_count(n_expert)
        w.add_expert_used_count(2)
    if embedding:
        w.add_pooling_type(gguf.PoolingType.MEAN)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_chat_template(CHATML_TEMPLATE)

    # --- tensors (numpy shape is (out, in); gguf stores dims reversed) -------
    tok_embd = rand(n_vocab, n_embd, std=1.0)
    tok_embd[:, 0] = 1.0  # constant bias channel, see module docstring
    w.add_tensor("token_embd.weight", tok_embd)

    proj_std = 0.02
    for i in range(n_layer):
        p = f"blk.{i}"
        attn_out = rand(n_embd, n_embd, std=proj_std)
        attn_out[0, :] = 0.0  # never write into the bias channel
        ffn_down = rand(n_embd, n_ff, std=proj_std)
        ffn_down[0, :] = 0.0
        w.add_tensor(f"{p}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"{p}.attn_q.weight", rand(n_embd, n_embd, std=proj_std))
        w.add_tensor(f"{p}.attn_k.weight", rand(n_embd, n_embd, std=proj_std))
        w.add_tensor(f"{p}.attn_v.weight", rand(n_embd, n_embd, std=proj_std))
        w.add_tensor(f"{p}.attn_output.weight", attn_out)
        w.add_tensor(f"{p}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        if n_expert:
            down = rand(n_expert, n_embd, n_ff, std=proj_std)
            down[:, 0, :] = 0.0
            w.add_tensor(f"{p}.ffn_gate_inp.weight", rand(n_expert, n_embd, std=proj_std))
            w.add_tensor(f"{p}.ffn_gate_exps.weight", rand(n_expert, n_ff, n_embd, std=proj_std))
            w.add_tensor(f"{p}.ffn_up_exps.weight", rand(n_expert, n_ff, n_embd, std=proj_std))
            w.add_tensor(f"{p}.ffn_down_exps.weight", down)
            continue
        w.add_tensor(f"{p}.ffn_gate.weight", rand(n_ff, n_embd, std=proj_std))
        w.add_tensor(f"{p}.ffn_up.weight", rand(n_ff, n_embd, std=proj_std))
        w.add_tensor(f"{p}.ffn_down.weight", ffn_down)

    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    output = rand(n_vocab, n_embd, std=2.0 / np.sqrt(n_embd))
    output[:, 0] = 0.0
    output[:_FIRST_NORMAL, 0] = _LOGIT_SUPPRESS  # special + byte tokens
    w.add_tensor("output.weight", output)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``python -m xgen_declare.tools.tinygguf OUT.gguf``."""
    ap = argparse.ArgumentParser(
        prog="python -m xgen_declare.tools.tinygguf",
        description="Write a tiny random-weight llama GGUF for tests.",
    )
    ap.add_argument("out", type=Path, help="output .gguf path")
    ap.add_argument("--embedding", action="store_true",
                    help="mark for mean pooling (serve /v1/embeddings)")
    ap.add_argument("--n-embd", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-expert", type=int, default=0, help="experts per layer (MoE); 0 = dense")
    args = ap.parse_args(argv)
    out = write_tiny_gguf(args.out, embedding=args.embedding, n_embd=args.n_embd,
                          n_layer=args.n_layer, seed=args.seed, n_expert=args.n_expert)
    print(f"{out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
