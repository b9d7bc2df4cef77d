"""Write a tiny random-weight HuggingFace llama model directory for tests (vLLM on the CPU).

Nothing is downloaded: the model is a transformers ``LlamaConfig`` + ``LlamaForCausalLM`` with random
(seeded) weights saved as safetensors, and the tokenizer is built locally with the ``tokenizers``
library and wrapped as a ``PreTrainedTokenizerFast`` with a ChatML chat template. The directory is
about 2 MB and loads in vLLM (``vllm serve DIR``), which answers ``/v1/completions`` and
``/v1/chat/completions`` (the text is noise, the protocol is real) and, with ``--runner pooling``,
``/v1/embeddings`` (vectors of length ``hidden_size`` = 128).

Layout
------
* architecture ``LlamaForCausalLM``: hidden 128, 4 attention heads (head_dim 32: vLLM's CPU attention
  needs head_dim >= 32; with 16 the model loads but every request fails), 4 KV heads, 2 layers,
  intermediate 256, max_position_embeddings 512, float32, untied ``lm_head``;
* byte-level vocabulary of 259 tokens, no merges::

      0          <|endoftext|>   bos / pad / unk (special)
      1          <|im_start|>    (special)
      2          <|im_end|>      eos (special)
      3..258     the 256 bytes, in GPT-2's byte-to-unicode spelling (byte b is token 3 + b)

  (``tokenizers``' ``ByteLevel`` pre-tokenizer and decoder, so any text round-trips);
* a ChatML chat template, so ``/v1/chat/completions`` works.

Keeping the output printable
----------------------------
As in ``tinygguf``: the residual stream carries a constant "bias" channel. Dimension 0 of every token
embedding is 1.0 and no layer writes into it (row 0 of every ``o_proj`` and ``down_proj`` is zero), so
after the final RMSNorm that channel is a large positive constant. ``lm_head.weight[:, 0]`` is -40 for
the special tokens and every byte outside printable ASCII (0x20..0x7E) and 0 for the printable ones:
a logit bias that removes the former from sampling. Generation therefore always produces printable
ASCII and never samples EOS, so it runs to ``max_tokens``.

Needs ``torch``, ``transformers``, ``tokenizers`` and ``safetensors`` (pip extra ``vllm``).
The same ``seed`` gives the same weights.

CLI::

    python -m xgen_declare.tools.tinyhf OUTDIR [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["write_tiny_hf", "CHATML_TEMPLATE", "HIDDEN_SIZE", "NUM_HEADS", "NUM_LAYERS", "VOCAB_SIZE", "main"]

HIDDEN_SIZE = 128
NUM_HEADS = 4
NUM_LAYERS = 2
INTERMEDIATE_SIZE = 256
MAX_POSITIONS = 512
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
N_SPECIAL = len(SPECIAL_TOKENS)
VOCAB_SIZE = N_SPECIAL + 256
BOS_ID, EOS_ID = 0, 2
SUPPRESS = -40.0

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map (what ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def build_vocab() -> dict[str, int]:
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for b, ch in sorted(_bytes_to_unicode().items()):
        vocab[ch] = N_SPECIAL + b
    assert len(vocab) == VOCAB_SIZE
    return vocab


def _printable_ids() -> list[int]:
    return [N_SPECIAL + b for b in range(0x20, 0x7F)]


def build_tokenizer():
    """A PreTrainedTokenizerFast over a byte-level BPE with no merges (one token per byte)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(vocab=build_vocab(), merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL_TOKENS[BOS_ID],
        eos_token=SPECIAL_TOKENS[EOS_ID],
        unk_token=SPECIAL_TOKENS[0],
        pad_token=SPECIAL_TOKENS[0],
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_model(seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        head_dim=HIDDEN_SIZE // NUM_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=BOS_ID,
        initializer_range=0.02,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float32) * std

    with torch.no_grad():
        # Explicit, seeded weights (independent of transformers' own init scheme).
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.copy_(torch.ones_like(p))
            else:
                p.copy_(rand(*p.shape, std=0.5 / (p.shape[-1] ** 0.5)))
        emb = model.model.embed_tokens.weight
        emb.copy_(rand(*emb.shape, std=0.3))
        emb[:, 0] = 1.0  # the bias channel
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0  # nothing writes into the bias channel
            layer.mlp.down_proj.weight[0, :] = 0.0
        head = model.lm_head.weight
        head[:, 0] = SUPPRESS
        head[_printable_ids(), 0] = 0.0
    return model


def write_tiny_hf(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write the model directory (config.json, model.safetensors, tokenizer files) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(seed)
    model.save_pretrained(out, safe_serialization=True)
    build_tokenizer().save_pretrained(out)
    # An explicit generation config: no sampling defaults that could surprise a test.
    gen_cfg = out / "generation_config.json"
    data = json.loads(gen_cfg.read_text()) if gen_cfg.exists() else {}
    data.update({"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": BOS_ID})
    gen_cfg.write_text(json.dumps(data, indent=2) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xgen_declare.tools.tinyhf",
                                 description="Write a tiny random-weight HuggingFace llama model directory "
                                             "(hidden 128, 4 heads, 2 layers, byte-level tokenizer, ChatML).")
    ap.add_argument("outdir", help="directory to write (created if missing)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = write_tiny_hf(args.outdir, seed=args.seed)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    print(f"wrote {path} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
