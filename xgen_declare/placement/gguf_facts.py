"""GGUF facts: what placement needs, read from the header and tensor table only.

A header-only reader (not `gguf.GGUFReader`): GGUFReader builds a Python object per metadata
array element, which costs ~0.5 s for a 128k-token vocabulary; here string arrays are skipped by
their lengths and the data region is never touched, so a 70B file (sparse or not) is read in a few
tens of milliseconds. Layout (GGUF v2/v3, little-endian): magic "GGUF", version u32, tensor count
u64, metadata count u64, metadata (key string, type u32, value), tensor infos (name, n_dims u32,
dims u64 x n, ggml type u32, offset u64), padding to `general.alignment`, data.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass, field

from xgen_declare.errors import ExitCode, XgenError

__all__ = ["GgufError", "TensorFact", "GgufFacts", "read_gguf_facts", "ggml_type_size"]

_MAGIC = b"GGUF"
# GGUF metadata value types -> struct format (scalars); 8 = string, 9 = array
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_SIZE = {k: struct.calcsize(v) for k, v in _SCALAR.items()}
_BLK_RE = re.compile(r"^blk\.(\d+)\.")

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


class GgufError(XgenError):
    """The file cannot be used for placement: not GGUF, truncated, or an architecture we cannot model."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}")


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

    @property
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
    data_offset: int = 0
    tensors: list[TensorFact] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # scalar and short-array metadata; long arrays as their length

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
        out = [0] * self.block_count
        for t in self.tensors:
            if t.layer is not None and t.layer < self.block_count:
                out[t.layer] += t.nbytes
        return out

    def tensor(self, name: str) -> TensorFact | None:
        return next((t for t in self.tensors if t.name == name), None)


class _Cursor:
    def __init__(self, buf, path: str):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str, size: int):
        if self.pos + size > len(self.buf):
            raise GgufError(self.path, "truncated GGUF file: the header or tensor table ends early")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self) -> int:
        return self.take("<I", 4)

    def u64(self) -> int:
        return self.take("<Q", 8)

    def string(self) -> str:
        n = self.u64()
        if self.pos + n > len(self.buf):
            raise GgufError(self.path, "truncated GGUF file: a string runs past the end of the file")
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, keep_array: int = 64):
        if vtype in _SCALAR:
            return self.take(_SCALAR[vtype], _SIZE[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype, count = self.u32(), self.u64()
            if etype in _SCALAR:
                size = _SIZE[etype] * count
                if self.pos + size > len(self.buf):
                    raise GgufError(self.path, "truncated GGUF file: an array runs past the end of the file")
                if count <= keep_array:
                    values = list(struct.unpack_from(f"<{count}{_SCALAR[etype][1]}", self.buf, self.pos))
                else:
                    values = _LongArray(count)
                self.pos += size
                return values
            if etype == 8:
                if count <= keep_array:
                    return [self.string() for _ in range(count)]
                for _ in range(count):
                    n = self.u64()
                    self.pos += n
                if self.pos > len(self.buf):
                    raise GgufError(self.path, "truncated GGUF file: an array runs past the end of the file")
                return _LongArray(count)
            return [self.value(etype) for _ in range(count)]
        raise GgufError(self.path, f"unknown GGUF metadata type {vtype} at byte {self.pos}")


class _LongArray(int):
    """A metadata array too long to keep (a vocabulary): stands for its length."""


def read_gguf_facts(path: str) -> GgufFacts:
    """Read the facts of a GGUF file; raises GgufError (with the path) for anything unusable."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size < 24:
                raise GgufError(path, f"not a GGUF file ({size} bytes, too short for a GGUF header)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(buf, path, size)
    except OSError as exc:
        raise GgufError(path, f"cannot read: {exc.strerror or exc}") from None


def _parse(buf, path: str, size: int) -> GgufFacts:
    if buf[:4] != _MAGIC:
        raise GgufError(path, "not a GGUF file (no GGUF magic at the start)")
    c = _Cursor(buf, path)
    c.pos = 4
    version = c.u32()
    if version not in (2, 3):
        raise GgufError(path, f"unsupported GGUF version {version} (2 and 3 are read)")
    n_tensors, n_kv = c.u64(), c.u64()
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise GgufError(path, "corrupt GGUF header (implausible tensor or metadata count)")
    meta: dict = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.u32())
    raw_tensors = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = c.u32()
        if n_dims > 8:
            raise GgufError(path, f"corrupt tensor table (tensor {name!r} has {n_dims} dimensions)")
        dims = tuple(c.u64() for _ in range(n_dims))
        raw_tensors.append((name, dims, c.u32(), c.u64()))
    align = int(meta.get("general.alignment", 32)) or 32
    data_offset = -(-c.pos // align) * align
    tensors = [_tensor_fact(path, *t) for t in raw_tensors]
    end = max((t.offset + t.nbytes for t in tensors), default=0)
    if data_offset + end > size:
        raise GgufError(path, f"truncated GGUF file: the tensor data needs {data_offset + end} bytes but the file "
                              f"has {size}")
    return _facts(path, size, version, meta, tensors, data_offset)


def _tensor_fact(path: str, name: str, dims: tuple[int, ...], type_id: int, offset: int) -> TensorFact:
    if type_id not in _GGML_TYPES:
        raise GgufError(path, f"tensor {name!r} has ggml type {type_id}, unknown to xgen-declare")
    tname, block, bsize = _GGML_TYPES[type_id]
    n = 1
    for d in dims:
        n *= d
    return TensorFact(name, tname, dims, -(-n // block) * bsize, offset)


def _per_layer(value, n_layer: int) -> list[int]:
    if isinstance(value, list):
        if len(value) != n_layer:
            return (list(value) + [value[-1]] * n_layer)[:n_layer] if value else [0] * n_layer
        return [int(v) for v in value]
    return [int(value)] * n_layer


def _facts(path: str, size: int, version: int, meta: dict, tensors: list[TensorFact], data_offset: int) -> GgufFacts:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GgufError(path, "GGUF file without general.architecture")

    def get(key: str, default=None):
        return meta.get(f"{arch}.{key}", default)

    n_layer = get("block_count")
    n_embd = get("embedding_length")
    n_head = get("attention.head_count")
    if n_layer is None or n_embd is None or n_head is None:
        missing = [k for k, v in (("block_count", n_layer), ("embedding_length", n_embd),
                                  ("attention.head_count", n_head)) if v is None]
        raise GgufError(path, f"architecture {arch!r} lacks {', '.join(arch + '.' + m for m in missing)}; "
                              "placement cannot be predicted for this model")
    n_layer, n_embd = int(n_layer), int(n_embd)
    heads = _per_layer(n_head, n_layer)
    heads_kv = _per_layer(get("attention.head_count_kv", n_head), n_layer)
    head_max = max(heads) if heads else 1
    key_len = int(get("attention.key_length", n_embd // head_max if head_max else 0))
    value_len = int(get("attention.value_length", key_len))
    tokens = meta.get("tokenizer.ggml.tokens")
    n_tokens = len(tokens) if isinstance(tokens, list) else int(tokens) if isinstance(tokens, int) else 0
    vocab = int(get("vocab_size", n_tokens) or 0) or None
    short_meta = {k: (int(v) if isinstance(v, _LongArray) else v) for k, v in meta.items()}
    return GgufFacts(
        path=path, file_size=size, version=version, architecture=arch, block_count=n_layer,
        embedding_length=n_embd, context_length=_int_or_none(get("context_length")),
        head_count=heads, head_count_kv=heads_kv, key_length=key_len, value_length=value_len,
        vocab_size=vocab, expert_count=int(get("expert_count", 0) or 0),
        expert_used_count=int(get("expert_used_count", 0) or 0),
        sliding_window=_int_or_none(get("attention.sliding_window")), data_offset=data_offset,
        tensors=tensors, metadata=short_meta)


def _int_or_none(value) -> int | None:
    return None if value is None or isinstance(value, (list, str)) else int(value)
