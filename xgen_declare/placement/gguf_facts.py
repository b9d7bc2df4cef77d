"""GGUF facts: what placement needs, read from the header and tensor table only.

A header-only reader (not `gguf.GGUFReader`): GGUFReader builds a Python object per metadata
array element, which costs ~0.5 s for a 128k-token vocabulary; here string arrays are skipped by
their lengths and the data region is never touched, so a 70B file (sparse or not) is read in a few
tens of milliseconds. The parse itself, and its budgets, are in gguf_header.py.

Every fact is read through a typed getter: an integer field holding a string, a float or an array is
a GgufError naming the key, and so is a value outside what a real model holds (`block_count` at most
MAX_BLOCK_COUNT: the chooser predicts every layer count, so its work grows with the square of it).
Nothing here allocates in proportion to a header field beyond those limits.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, TypeVar

from xgen_declare.errors import FileRefused
from xgen_declare.placement.gguf_header import BeyondPrefix, GgufError, Header, LongArray, LongString, read_header
from xgen_declare.readers.bounded import opened

T = TypeVar("T")

__all__ = ["GgufError", "BeyondPrefix", "TensorFact", "GgufFacts", "read_gguf_facts", "facts_from_prefix",
           "ggml_type_size", "MAX_BLOCK_COUNT"]

_BLK_RE = re.compile(r"^blk\.(\d+)\.")
MAX_BLOCK_COUNT = 256  # the largest published models have ~130 layers (Llama 3.1 405B: 126)
_DIM = 1 << 20  # embedding length, feed-forward length per layer
_HEADS = 1 << 16  # attention heads, head sizes, experts
_LENGTH = 1 << 32  # context length, sliding window, vocabulary
_SSM_KEYS = ("conv_kernel", "inner_size", "state_size", "group_count", "time_step_rank")

# ggml type id -> (name, elements per block, bytes per block); mirrors ggml.h / gguf.GGML_QUANT_SIZES
_GGML_TYPES = {
    0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20), 6: ("q5_0", 32, 22),
    7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 9: ("q8_1", 32, 40), 10: ("q2_K", 256, 84),
    11: ("q3_K", 256, 110), 12: ("q4_K", 256, 144), 13: ("q5_K", 256, 176), 14: ("q6_K", 256, 210),
    15: ("q8_K", 256, 292), 16: ("iq2_xxs", 256, 66), 17: ("iq2_xs", 256, 74), 18: ("iq3_xxs", 256, 98),
    19: ("iq1_s", 256, 50), 20: ("iq4_nl", 32, 18), 21: ("iq3_s", 256, 110), 22: ("iq2_s", 256, 82),
    23: ("iq4_xs", 256, 136), 24: ("i8", 1, 1), 25: ("i16", 1, 2), 26: ("i32", 1, 4), 27: ("i64", 1, 8),
    28: ("f64", 1, 8), 29: ("iq1_m", 256, 56), 30: ("bf16", 1, 2), 34: ("tq1_0", 256, 54),
    35: ("tq2_0", 256, 66), 39: ("mxfp4", 32, 17),
}
_TYPE_BY_NAME = {name.lower(): (block, size) for name, block, size in _GGML_TYPES.values()}


def ggml_type_size(type_name: str, n_elements: int) -> int:
    """Bytes of `n_elements` values of ggml type `type_name` (e.g. "q8_0"); rounds up to whole blocks."""
    block, size = _TYPE_BY_NAME[type_name.lower()]
    return -(-n_elements // block) * size


@dataclass(frozen=True)
class TensorFact:
    name: str
    type: str
    shape: tuple[int, ...]  # ggml order: ne[0] is the row length
    nbytes: int
    offset: int  # from the start of the data region

    @cached_property
    def layer(self) -> int | None:
        m = _BLK_RE.match(self.name)
        return int(m.group(1)) if m else None


@dataclass
class GgufFacts:
    path: str
    file_size: int
    version: int
    architecture: str
    block_count: int
    embedding_length: int
    context_length: int | None
    head_count: list[int]  # per layer (GGUF may store a scalar or an array)
    head_count_kv: list[int]  # per layer; 0 = a layer without attention (e.g. recurrent)
    key_length: int
    value_length: int
    vocab_size: int | None
    expert_count: int = 0
    expert_used_count: int = 0
    sliding_window: int | None = None
    ssm: dict[str, int] = field(default_factory=dict)  # <arch>.ssm.* (Mamba layers): conv_kernel, inner_size, ...
    shortconv_l_cache: int = 0  # <arch>.shortconv.l_cache (LFM2's short convolutions)
    full_attention_interval: int = 4  # <arch>.full_attention_interval (Qwen3-Next: every N-th layer is attention)
    data_offset: int = 0
    tensors: list[TensorFact] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # scalar and short-array metadata; long arrays as their length
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def memo(self, key, compute):
        """`compute(self)`, once per facts (they are not changed after reading): the chooser predicts
        every layer count, and each prediction would otherwise walk the whole tensor table again."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        return self._memo[key]

    @property
    def n_embd_k_gqa(self) -> list[int]:
        return [self.key_length * kv for kv in self.head_count_kv]

    @property
    def n_embd_v_gqa(self) -> list[int]:
        return [self.value_length * kv for kv in self.head_count_kv]

    @property
    def weights_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def layer_bytes(self) -> list[int]:
        """Weight bytes of each repeating layer blk.N."""
        return list(self.memo("layer_bytes", _layer_bytes))

    def tensor(self, name: str) -> TensorFact | None:
        return next((t for t in self.tensors if t.name == name), None)


def _layer_bytes(facts: GgufFacts) -> tuple[int, ...]:
    out = [0] * facts.block_count
    for t in facts.tensors:
        if t.layer is not None and t.layer < facts.block_count:
            out[t.layer] += t.nbytes
    return tuple(out)


HEADER_LIMIT = 256 << 20  # a header (metadata + tensor table) larger than this is refused as implausible


def _read_header(fd: int, size: int, path: str) -> Header:
    want = 1 << 20
    while True:
        head = os.pread(fd, min(size, want), 0)
        if len(head) < min(size, want):
            raise GgufError(path, "the file shrank while it was read (being rewritten?); it is read again when it "
                            "changes")
        try:
            return read_header(head, path, file_size=size)
        except BeyondPrefix:
            if want >= HEADER_LIMIT:
                raise GgufError(path, f"implausible GGUF header: larger than {HEADER_LIMIT >> 20} MiB; the file is "
                                "corrupt or crafted") from None
            want *= 4


def read_gguf_facts(path: str) -> GgufFacts:
    """Read the facts of a GGUF file; raises GgufError (with the path), and nothing else, for anything
    unusable. The file is opened with readers.bounded (a FIFO or a device is refused without blocking)
    and its start is read into memory (1 MiB, then 4x more while the header needs it, up to
    HEADER_LIMIT): never mapped, since a file truncated while mapped faults the reader (SIGBUS) and
    would kill the daemon. The parse is bounded by gguf_header's budgets and by MAX_BLOCK_COUNT here."""
    return read_file_guarded(path, _facts, "point model_path at a GGUF file", "cannot read")[0]


def facts_from_prefix(head: bytes, size: int, path: str) -> GgufFacts:
    """The facts of a GGUF file of `size` bytes whose start is `head` (the hub: HTTP Range reads of a file not
    fetched yet), through the same parse and checks as `read_gguf_facts`, so the figures equal those of the
    whole file on disk. BeyondPrefix when the header runs past `head` (read more of the file); GgufError,
    and nothing else, for anything unusable."""
    return parse_guarded(path, size, lambda: read_header(head, path, file_size=size), _facts)


def parse_guarded(path: str, size: int, header: Callable[[], Header], then: Callable[[str, int, Header], T]) -> T:
    """`then(path, size, header())`, with GgufError (and BeyondPrefix, one) as the only errors: a gap in the
    checks is this model's unreadable header, never a crash of the caller (the daemon's loop, a plan)."""
    if size < 24:
        raise GgufError(path, f"not a GGUF file ({size} bytes, too short for a GGUF header)")
    try:
        return then(path, size, header())
    except GgufError:
        raise
    except Exception as exc:
        raise GgufError(path, f"unreadable GGUF header ({type(exc).__name__}: {exc})") from exc


def read_file_guarded(path: str, then: Callable[[str, int, Header], T], refused_hint: str,
                      unreadable: str) -> tuple[T, int]:
    """(`then` of the GGUF file at `path`, its size): opened with readers.bounded, its start read into memory
    (never mapped), through `parse_guarded`; a refused or unreadable file is a GgufError in the caller's words."""
    try:
        with opened(path) as f:
            size = os.fstat(f.fileno()).st_size
            return parse_guarded(path, size, lambda: _read_header(f.fileno(), size, path), then), size
    except GgufError:
        raise
    except FileRefused as exc:
        raise GgufError(path, f"{exc.reason} ({refused_hint})") from None
    except OSError as exc:
        raise GgufError(path, f"{unreadable}: {exc.strerror or exc}") from None


def alignment(m: _Meta) -> int:
    """general.alignment: a power of two (32 when absent)."""
    align = m.int("general.alignment", 1 << 20, default=32, lo=1)
    if align & (align - 1):
        raise m.wrong("general.alignment", f"= {align} is not a power of two")
    return align


def tensors_within(path: str, header: Header, size: int, align: int) -> tuple[list[TensorFact], int]:
    """(the tensor table, where the tensor data starts), checked to lie within a file of `size` bytes."""
    tensors = [_tensor_fact(path, *t) for t in header.tensors]
    data_offset = -(-header.end // align) * align
    end = max((t.offset + t.nbytes for t in tensors), default=0)
    if data_offset + end > size:
        raise GgufError(path, f"truncated GGUF file: the tensor data needs {data_offset + end} bytes but the file "
                              f"has {size}")
    return tensors, data_offset


def _tensor_fact(path: str, name: str, dims: tuple[int, ...], type_id: int, offset: int) -> TensorFact:
    if type_id not in _GGML_TYPES:
        raise GgufError(path, f"tensor {name!r} has ggml type {type_id}, unknown to xgen-declare")
    tname, block, bsize = _GGML_TYPES[type_id]
    n = 1
    for d in dims:
        n *= d
    return TensorFact(name, tname, dims, -(-n // block) * bsize, offset)


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, LongString):
        return f"a string of {int(value)} bytes"
    if isinstance(value, LongArray):
        return f"an array of {int(value)} values"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, list):
        return f"an array of {len(value)} values"
    if isinstance(value, float):
        return f"a float ({value!r})"
    return type(value).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, (bool, LongArray, LongString))


class _Meta:
    """Typed reads of the metadata: each names the key when the value is not what a model holds."""

    def __init__(self, path: str, meta: dict):
        self.path, self.meta = path, meta

    def wrong(self, key: str, message: str) -> GgufError:
        return GgufError(self.path, f"metadata {key} {message}; the file is corrupt or not a model llama.cpp "
                                    "can load (re-download or re-convert it)")

    def check(self, key: str, value, hi: int, lo: int = 0) -> int:
        if not _is_int(value):
            raise self.wrong(key, f"is {_describe(value)}, not an integer")
        if not lo <= value <= hi:
            raise self.wrong(key, f"= {value} is outside {lo}..{hi}, the range xgen-declare reads")
        return value

    def int(self, key: str, hi: int, default=None, lo: int = 0, lists_ok: bool = False):
        """The integer at `key` in lo..hi; `default` when absent (or, with lists_ok, an array)."""
        value = self.meta.get(key)
        if value is None or (lists_ok and isinstance(value, (list, LongArray))):
            return default
        return self.check(key, value, hi, lo)

    def per_layer(self, key: str, n_layer: int, hi: int, default=None) -> list[int]:
        """A value per layer: GGUF stores a scalar or an array (padded with its last value or cut to n_layer)."""
        value = self.meta.get(key, default)
        if not isinstance(value, list):
            return [self.check(key, value, hi)] * n_layer
        values = [self.check(f"{key}[{i}]", v, hi) for i, v in enumerate(value[:n_layer])]
        if not values:
            return [0] * n_layer
        return values + [values[-1]] * (n_layer - len(values))


def _facts(path: str, size: int, header: Header) -> GgufFacts:
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GgufError(path, "GGUF file without general.architecture" if arch is None or arch == "" else
                        f"metadata general.architecture is {_describe(arch)}, not a name; the file is corrupt")
    m = _Meta(path, meta)
    align = alignment(m)
    missing = [k for k in ("block_count", "embedding_length", "attention.head_count") if f"{arch}.{k}" not in meta]
    if missing:
        raise GgufError(path, f"architecture {arch!r} lacks {', '.join(arch + '.' + k for k in missing)}; "
                              "placement cannot be predicted for this model")
    key = f"{arch}.block_count"
    n_layer = m.int(key, 1 << 64)
    if n_layer > MAX_BLOCK_COUNT or n_layer < 1:
        raise m.wrong(key, f"= {n_layer}: xgen-declare models 1..{MAX_BLOCK_COUNT} layers (the largest published "
                           "models have ~130)")
    n_embd = m.int(f"{arch}.embedding_length", _DIM, lo=1)
    heads = m.per_layer(f"{arch}.attention.head_count", n_layer, _HEADS)
    heads_kv = m.per_layer(f"{arch}.attention.head_count_kv", n_layer, _HEADS,
                           default=meta[f"{arch}.attention.head_count"])
    head_max = max(heads)
    key_len = m.int(f"{arch}.attention.key_length", _HEADS, default=n_embd // head_max if head_max else 0)
    value_len = m.int(f"{arch}.attention.value_length", _HEADS, default=key_len)
    ff = f"{arch}.feed_forward_length"
    if isinstance(meta.get(ff), list):
        m.per_layer(ff, n_layer, _DIM)  # memory.n_ff_active reads it: checked here
    else:
        m.int(ff, _DIM)
    tokens = meta.get("tokenizer.ggml.tokens")
    n_tokens = len(tokens) if isinstance(tokens, list) else int(tokens) if isinstance(tokens, LongArray) else 0
    vocab = m.int(f"{arch}.vocab_size", _LENGTH, default=n_tokens) or None
    tensors, data_offset = tensors_within(path, header, size, align)
    short_meta = {k: (int(v) if isinstance(v, (LongArray, LongString)) else v) for k, v in meta.items()}
    return GgufFacts(
        path=path, file_size=size, version=header.version, architecture=arch, block_count=n_layer,
        embedding_length=n_embd, context_length=m.int(f"{arch}.context_length", _LENGTH, lists_ok=True),
        head_count=heads, head_count_kv=heads_kv, key_length=key_len, value_length=value_len,
        vocab_size=vocab, expert_count=m.int(f"{arch}.expert_count", _HEADS, default=0),
        expert_used_count=m.int(f"{arch}.expert_used_count", _HEADS, default=0),
        sliding_window=m.int(f"{arch}.attention.sliding_window", _LENGTH, lists_ok=True),
        ssm={k: m.int(f"{arch}.ssm.{k}", _DIM, default=0) for k in _SSM_KEYS},
        shortconv_l_cache=m.int(f"{arch}.shortconv.l_cache", _HEADS, default=0),
        full_attention_interval=m.int(f"{arch}.full_attention_interval", MAX_BLOCK_COUNT, default=4, lo=1),
        data_offset=data_offset, tensors=tensors, metadata=short_meta)
