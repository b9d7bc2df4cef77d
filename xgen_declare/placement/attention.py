"""Which cache each layer of a model keeps, as llama.cpp decides it from the GGUF metadata. Pure.

llama.cpp b11434 keeps one of these per model (`llama_model::create_memory`):

* a plain KV cache: every layer with KV heads gets `n_ctx_seq` cells per stream;
* an iSWA cache (`llama_kv_cache_iswa`) when the architecture marks some layers sliding-window
  (`swa_type != NONE`): a base cache of `n_ctx_seq` cells for the full-attention layers and a SWA cache
  for the windowed ones of
      PAD(min(n_ctx_seq, n_swa * (n_seq if unified else 1) + n_ubatch), 256) cells per stream
  (`--swa-full`: n_ctx_seq). Chunked attention (Llama 4) is sized the same way.
  Which layers are windowed: `<arch>.attention.sliding_window_pattern` as a per-layer bool array, else
  the pattern N (key or the architecture's default): layer il is windowed when il % N < N - 1
  (`dense_first`: when il % N != 0); N = 0 makes every layer windowed (`llama_hparams::set_swa_pattern`).
* MLA (DeepSeek-V2/V3, Kimi K2: `<arch>.attention.key_length_mla` and `value_length_mla` set): the cache
  holds one latent K row per cell and layer, `key_length` (= kv_lora_rank + rope dims) x head_count_kv
  (1), and no V at all (`llama_kv_cache`: `has_v = !is_mla`; V is read back out of the latent).
* a hybrid memory (`llama_memory_hybrid`) for the hybrids of HYBRID_ARCHS: the KV cache above on the
  attention layers only, and for every recurrent layer an f32 "RS buffer" of one conv state of
  (d_conv - 1) x (d_inner + 2 x n_group x d_state) values (`llama_hparams::n_embd_r`) and one state of
  d_state x d_inner values (`n_embd_s`) per sequence: `--parallel` slots (4 when auto), whatever the
  context size (`llama_memory_recurrent`, mem_size = max(1, n_seq_max)). Which layers are recurrent
  (each architecture's `load_arch_hparams`):
    granitehybrid (Granite 4.0-H, Mamba-2): head_count_kv[il] == 0;
    nemotron_h (Nemotron-H, Mamba-2 + attention + MLP-only layers): head_count_kv[il] == 0 and
      feed_forward_length[il] == 0 (an MLP layer has neither KV nor state);
    qwen3next (Qwen3-Next, gated delta net + gated attention): every layer but each
      `full_attention_interval`-th (default 4): (il + 1) % interval != 0. The same two sizes hold for the
      delta net: ssm.state_size is the key head size, ssm.group_count the key heads, ssm.inner_size the
      value heads x value head size, so n_embd_r is the q/k/v conv state and n_embd_s the per-head
      key x value matrices.
    lfm2 (LFM2, short convolutions + attention): head_count_kv[il] == 0; its state is the convolution's
      last l_cache - 1 inputs, n_embd_r = n_embd x (`shortconv.l_cache` - 1), and no n_embd_s.
    jamba (Jamba, Mamba-1 + attention, MoE): head_count_kv[il] == 0; no groups (n_group 0), so
      n_embd_r = (d_conv - 1) x d_inner.

The table below is the architecture's own loader (src/models/<arch>.cpp): the default pattern, whether
it is dense-first, the default window, and whether a window of 0 (or no key) turns SWA off.
"""

from __future__ import annotations

from dataclasses import dataclass

from xgen_declare.placement.gguf_facts import GgufFacts

__all__ = ["Attention", "attention_of", "recurrent_state_per_seq", "SWA_ARCHS", "HYBRID_ARCHS"]

# hybrids (llama_memory_hybrid) -> the design `fit` names; which layers are recurrent: _recurrent_flags
HYBRID_ARCHS: dict[str, str] = {
    "granitehybrid": "Mamba-2",
    "nemotron_h": "Mamba-2",
    "qwen3next": "gated delta net",
    "lfm2": "short convolution",
    "jamba": "Mamba-1",
}

# arch -> (default pattern, dense_first, default window (None: the key is required), swa only if key > 0,
#          chunked). Llama 4's window is fixed at 8192 (its loader overrides the key unless it is 0).
SWA_ARCHS: dict[str, tuple[int, bool, int | None, bool, bool]] = {
    "gemma2": (2, False, 4096, False, False),
    "gemma3": (6, False, None, True, False),
    "cohere2": (4, False, None, False, False),
    "gpt-oss": (2, False, None, False, False),
    "olmo2": (4, False, None, True, False),
    "llama4": (4, False, 8192, False, True),
}


@dataclass(frozen=True)
class Attention:
    """The cache layout of one model: which layers are windowed, and how wide the window is."""

    swa: tuple[bool, ...]  # per layer: True = the layer keeps its KV in the sliding-window cache
    n_swa: int = 0  # window in tokens (chunk size for chunked attention)
    chunked: bool = False
    mla: bool = False  # K holds the compressed latent; no V cache
    recurrent: tuple[bool, ...] = ()  # per layer, hybrids only: True = a recurrent layer (RS buffer, no KV)

    @property
    def is_iswa(self) -> bool:
        return any(self.swa)

    def describe(self, kv_heads: list[int], full_cells: int, swa_cells: int) -> str:
        """The design as `fit` and the ledger name it."""
        full = sum(1 for il, w in enumerate(self.swa) if not w and kv_heads[il])
        windowed = sum(1 for il, w in enumerate(self.swa) if w and kv_heads[il])
        kind = "chunked" if self.chunked else "windowed"
        return (f"iSWA: {full} global layers x {full_cells} cells + {windowed} {kind} layers x {swa_cells} cells "
                f"({'chunk' if self.chunked else 'window'} {self.n_swa} tokens)")


def attention_of(facts: GgufFacts) -> Attention:
    return facts.memo("attention", _attention_of)


def _attention_of(facts: GgufFacts) -> Attention:
    att = _swa_of(facts)
    return Attention(att.swa, att.n_swa, att.chunked, mla=_is_mla(facts), recurrent=_recurrent_flags(facts))


def _recurrent_flags(facts: GgufFacts) -> tuple[bool, ...]:
    """Per layer, for the hybrids: True = a recurrent layer (an RS buffer state, no KV); () for others."""
    arch, n = facts.architecture, facts.block_count
    if arch not in HYBRID_ARCHS:
        return ()
    if arch == "qwen3next":
        interval = facts.full_attention_interval
        return tuple((il + 1) % interval != 0 for il in range(n))
    if arch == "nemotron_h":
        ff = facts.metadata.get("nemotron_h.feed_forward_length")
        ff = list(ff[:n]) + [0] * (n - len(ff)) if isinstance(ff, list) else [ff] * n
        return tuple(h == 0 and not f for h, f in zip(facts.head_count_kv, ff))
    return tuple(h == 0 for h in facts.head_count_kv)


def recurrent_state_per_seq(facts: GgufFacts) -> int:
    """Bytes of one sequence's recurrent state (conv + SSM, f32) in one recurrent layer; 0 for others."""
    if facts.architecture not in HYBRID_ARCHS:
        return 0
    ssm = facts.ssm
    d_conv, d_inner, d_state, n_group = (ssm.get(k, 0) for k in ("conv_kernel", "inner_size", "state_size",
                                                                  "group_count"))
    n_embd_r = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state)
    if facts.architecture == "lfm2":
        n_embd_r = facts.embedding_length * max(facts.shortconv_l_cache - 1, 0)
    n_embd_s = d_state * d_inner
    return 4 * (n_embd_r + n_embd_s)


def _is_mla(facts: GgufFacts) -> bool:
    """llama_hparams::is_mla: both per-head MLA sizes given (a GGUF converted for the latent cache)."""
    arch = facts.architecture
    k, v = (facts.metadata.get(f"{arch}.attention.{key}") for key in ("key_length_mla", "value_length_mla"))
    return all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in (k, v))


def _swa_of(facts: GgufFacts) -> Attention:
    n = facts.block_count
    spec = SWA_ARCHS.get(facts.architecture)
    if spec is None:
        return Attention(swa=(False,) * n)
    pattern, dense_first, default_window, needs_key, chunked = spec
    key = facts.sliding_window
    if facts.architecture == "llama4":
        if key == 0:
            return Attention(swa=(False,) * n)
        key = None  # llama.cpp ignores the key's value: the chunk is 8192
    window = key if key is not None else default_window
    if not window or (needs_key and not key):
        return Attention(swa=(False,) * n)
    flags = _flags(facts, n, pattern, dense_first)
    return Attention(swa=flags, n_swa=window, chunked=chunked)


def _flags(facts: GgufFacts, n: int, pattern: int, dense_first: bool) -> tuple[bool, ...]:
    raw = facts.metadata.get(f"{facts.architecture}.attention.sliding_window_pattern")
    if isinstance(raw, list) and raw and all(isinstance(v, bool) for v in raw):
        flags = list(raw[:n])
        return tuple(flags + [False] * (n - len(flags)))
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= n:
        pattern = raw
    if pattern == 0:
        return (True,) * n
    if dense_first:
        return tuple(il % pattern != 0 for il in range(n))
    return tuple(il % pattern < pattern - 1 for il in range(n))
