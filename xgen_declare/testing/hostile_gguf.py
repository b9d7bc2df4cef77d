"""Hand-built GGUF files, valid or hostile, for tests of the header reader and of placement.

`write_gguf` writes a small valid llama-architecture file (header, metadata, tensor table; the data
region a sparse hole) whose metadata can be replaced or extended value by value, in GGUF's own
encoding, so that a test can plant exactly one bad value: a string where a count belongs, nested
arrays, a `block_count` of 2^33, an array that claims 2^60 strings. `gguf.GGUFWriter` refuses to write
most of these, hence the bytes are built here.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["U32", "U64", "I32", "F32", "STRING", "ARRAY", "u32", "u64", "i32", "f32", "string", "array",
           "nested_array", "base_metadata", "base_tensors", "gguf_bytes", "write_gguf", "split_gguf_parts",
           "write_split_gguf"]

# GGUF metadata value types
U32, I32, F32, U64, STRING, ARRAY = 4, 5, 6, 10, 8, 9
_GGML_F32 = 0  # ggml type id of the tensors written here


def _str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def u32(n: int) -> tuple[int, bytes]:
    return U32, struct.pack("<I", n)


def i32(n: int) -> tuple[int, bytes]:
    return I32, struct.pack("<i", n)


def f32(x: float) -> tuple[int, bytes]:
    return F32, struct.pack("<f", x)


def u64(n: int) -> tuple[int, bytes]:
    return U64, struct.pack("<Q", n)


def string(text: str | bytes) -> tuple[int, bytes]:
    return STRING, _str(text)


def array(etype: int, count: int, payload: bytes = b"") -> tuple[int, bytes]:
    """An array value claiming `count` elements of `etype`, followed by `payload` (which may hold fewer)."""
    return ARRAY, struct.pack("<IQ", etype, count) + payload


def nested_array(depth: int) -> tuple[int, bytes]:
    """An array of one array of one array ... `depth` levels deep, the innermost empty."""
    return ARRAY, struct.pack("<IQ", ARRAY, 1) * (depth - 1) + struct.pack("<IQ", U32, 0)


def base_metadata(n_layer: int = 2, n_embd: int = 64, n_head: int = 2) -> dict[str, tuple[int, bytes]]:
    return {
        "general.architecture": string("llama"),
        "general.alignment": u32(32),
        "llama.block_count": u32(n_layer),
        "llama.embedding_length": u32(n_embd),
        "llama.attention.head_count": u32(n_head),
        "llama.attention.head_count_kv": u32(n_head),
        "llama.context_length": u32(512),
        "llama.feed_forward_length": u32(4 * n_embd),
        "llama.vocab_size": u32(32),
    }


def base_tensors(n_layer: int = 2, n_embd: int = 64, n_vocab: int = 32) -> list[tuple[str, tuple[int, ...]]]:
    out = [("token_embd.weight", (n_embd, n_vocab))]
    for i in range(n_layer):
        out += [(f"blk.{i}.attn_q.weight", (n_embd, n_embd)), (f"blk.{i}.attn_k.weight", (n_embd, n_embd)),
                (f"blk.{i}.attn_v.weight", (n_embd, n_embd)), (f"blk.{i}.ffn_up.weight", (n_embd, 4 * n_embd))]
    return out + [("output_norm.weight", (n_embd,)), ("output.weight", (n_embd, n_vocab))]


def gguf_bytes(metadata: dict[str, tuple[int, bytes]], tensors: list[tuple[str, tuple[int, ...]]],
               version: int = 3) -> tuple[bytes, int]:
    """(header + metadata + tensor table padded to 32, bytes of f32 tensor data that follow)."""
    out = [b"GGUF", struct.pack("<IQQ", version, len(tensors), len(metadata))]
    for key, (vtype, payload) in metadata.items():
        out += [_str(key), struct.pack("<I", vtype), payload]
    offset = 0
    for name, dims in tensors:
        out += [_str(name), struct.pack("<I", len(dims)), struct.pack(f"<{len(dims)}Q", *dims),
                struct.pack("<IQ", _GGML_F32, offset)]
        n = 4
        for d in dims:
            n *= d
        offset += -(-n // 32) * 32
    head = b"".join(out)
    return head + b"\0" * (-len(head) % 32), offset


def write_gguf(path: str | Path, metadata: dict[str, tuple[int, bytes]] | None = None,
               tensors: list[tuple[str, tuple[int, ...]]] | None = None, *, size: int | None = None,
               **changes: tuple[int, bytes]) -> str:
    """Write a GGUF at `path`: `base_metadata()` with `changes` (keys with '.' written as '__':
    `llama__block_count=u64(2**33)`), `tensors` (default `base_tensors()`), the data region a hole.
    `size`: truncate the file to this many bytes instead (a sparse file of any length)."""
    meta = dict(base_metadata() if metadata is None else metadata)
    meta.update({k.replace("__", "."): v for k, v in changes.items()})
    head, data = gguf_bytes(meta, base_tensors() if tensors is None else tensors)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + data if size is None else size)
    return str(path)


# A split GGUF as llama.cpp's gguf-split lays it out: the first part holds the metadata with split.no /
# split.count / split.tensors.count and its share of the tensors, each later part only the split.* keys and
# its own tensors; the data regions are holes.

def split_gguf_parts(count: int = 2, tensors_count: int | None = None) -> list[bytes]:
    """The bytes of each part of `base_tensors()` split into `count` parts (`tensors_count`: what the first part
    claims in split.tensors.count, default the true total)."""
    tensors = base_tensors()
    share = -(-len(tensors) // count)
    out = []
    for i in range(count):
        meta = dict(base_metadata()) if i == 0 else {}
        meta.update({"split.no": u32(i), "split.count": u32(count),
                     "split.tensors.count": u32(len(tensors) if tensors_count is None else tensors_count)})
        head, data = gguf_bytes(meta, tensors[i * share:(i + 1) * share])
        out.append(head + b"\0" * data)
    return out


def write_split_gguf(directory: str | Path, stem: str = "m", count: int = 2, **kw) -> list[Path]:
    """The parts written as STEM-0000I-of-0000N.gguf in `directory`; returns their paths, first part first."""
    paths = []
    for i, data in enumerate(split_gguf_parts(count, **kw), 1):
        p = Path(directory) / f"{stem}-{i:05d}-of-{count:05d}.gguf"
        p.write_bytes(data)
        paths.append(p)
    return paths
