"""The GGUF header parser, with budgets: metadata and tensor table, never the data region.

The file is anybody's: a model file can be planted through the API, a manifest names any path. So the
parser's work is bounded by constants, not by what the header claims, and it raises only `GgufError`:

* counts: at most `MAX_KV` metadata entries and `MAX_TENSORS` tensors; dimensions per tensor <= 8;
* nesting: arrays inside arrays at most `MAX_DEPTH` deep (llama.cpp reads none; GGUF allows them);
* work: arrays of numbers are skipped in O(1) (their length is `count x size`, checked against the
  file); strings and nested arrays must be visited one by one, so every element visited (and every
  number kept) spends one of `MAX_ITEMS` for the whole header: an array that claims 2^60 strings is
  refused before its first element ("implausible"), whatever the file's size;
* text: keys at most `MAX_KEY` bytes and tensor names `MAX_TENSOR_NAME` bytes (refused beyond);
  a string value longer than `MAX_STRING` is skipped, not decoded (`LongString`); all decoded text
  together at most `MAX_TEXT` bytes.

Real models stay far inside (Llama 4: ~440 k merges + 200 k tokens ~ 0.65 M items, ~1 000 tensors).
Layout (GGUF v2/v3, little-endian): magic "GGUF", version u32, tensor count u64, metadata count u64,
metadata (key string, type u32, value), tensor infos (name, n_dims u32, dims u64 x n, ggml type u32,
offset u64), padding to `general.alignment`, data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from xgen_declare.errors import ExitCode, XgenError

__all__ = ["GgufError", "Header", "LongArray", "LongString", "read_header", "MAX_KV", "MAX_TENSORS",
           "MAX_DEPTH", "MAX_ITEMS", "MAX_KEY", "MAX_TENSOR_NAME", "MAX_STRING", "MAX_TEXT", "KEEP_NUMBERS"]

MAX_KV = 65536
MAX_TENSORS = 65536
MAX_DEPTH = 3
MAX_ITEMS = 1 << 22
MAX_KEY = 1024
MAX_TENSOR_NAME = 256  # llama.cpp's own limit is 64 (GGML_MAX_NAME)
MAX_STRING = 1 << 20
MAX_TEXT = 32 << 20
KEEP_NUMBERS = 4096  # numeric arrays up to this length are kept (per-layer values); longer: LongArray
KEEP_STRINGS = 64

_MAGIC = b"GGUF"
# GGUF metadata value types -> struct format (scalars); 8 = string, 9 = array
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_SIZE = {k: struct.calcsize(v) for k, v in _SCALAR.items()}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class GgufError(XgenError):
    """The file cannot be used for placement: not GGUF, truncated, beyond the reader's limits, a value
    of the wrong type, or an architecture we cannot model. `path`, `message`."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}")


class LongArray(int):
    """A metadata array too long to keep (a vocabulary): stands for its length."""


class LongString(int):
    """A metadata string too long to decode: stands for its length in bytes."""


@dataclass
class Header:
    version: int
    metadata: dict
    tensors: list[tuple[str, tuple[int, ...], int, int]]  # name, dims, ggml type id, offset
    end: int  # the byte after the tensor table


class BeyondPrefix(GgufError):
    """The header runs past the prefix of the file it was given (read_header(..., prefix=True)): read more."""


class _Cursor:
    def __init__(self, buf, path: str, file_size: int | None = None):
        self.buf, self.size, self.pos, self.path = buf, len(buf), 0, path
        self.file_size = len(buf) if file_size is None else file_size
        self.prefix = self.size < self.file_size
        self.items, self.text = MAX_ITEMS, MAX_TEXT
        self.key = ""  # the metadata key being read, for messages

    def error(self, message: str) -> GgufError:
        return GgufError(self.path, message)

    def implausible(self, what: str) -> GgufError:
        where = f"metadata key {self.key!r}: " if self.key else ""
        return self.error(f"implausible GGUF header: {where}{what}; the file is corrupt or crafted")

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            if self.prefix and n <= self.file_size - self.pos:
                raise BeyondPrefix(self.path, f"{what} runs past the first {self.size} bytes read")
            raise self.error(f"truncated GGUF file: {what} runs past the end of the file")

    def take(self, fmt: str, size: int):
        self.need(size, "the header or tensor table")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self) -> int:
        return self.take("<I", 4)

    def u64(self) -> int:
        return self.take("<Q", 8)

    def spend(self, n: int, what: str) -> None:
        if n > self.items:
            raise self.implausible(f"{what}; at most {MAX_ITEMS} array elements are read in all")
        self.items -= n

    def decode(self, n: int, what: str) -> str:
        self.need(n, what)
        if n > self.text:
            raise self.implausible(f"more than {MAX_TEXT >> 20} MiB of text in the header")
        self.text -= n
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def name(self, limit: int, what: str) -> str:
        n = self.u64()
        if n > limit:
            raise self.implausible(f"{what} of {n} bytes (at most {limit})")
        return self.decode(n, what)

    def string(self) -> str | LongString:
        n = self.u64()
        if n <= MAX_STRING:
            return self.decode(n, "a string")
        self.need(n, "a string")
        self.pos += n
        return LongString(n)

    def value(self, vtype: int, depth: int = 0):
        if vtype in _SCALAR:
            return self.take(_SCALAR[vtype], _SIZE[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            return self.array(depth + 1)
        raise self.error(f"metadata key {self.key!r} has unknown GGUF type {vtype} (at byte {self.pos - 4})")

    def array(self, depth: int):
        if depth > MAX_DEPTH:
            raise self.implausible(f"arrays nested more than {MAX_DEPTH} deep")
        etype, count = self.u32(), self.u64()
        if etype in _SCALAR:
            size = _SIZE[etype] * count
            self.need(size, f"an array of {count} values")
            if count > KEEP_NUMBERS:
                self.pos += size
                return LongArray(count)
            self.spend(count, f"an array of {count} numbers")
            values = list(struct.unpack_from(f"<{count}{_SCALAR[etype][1]}", self.buf, self.pos))
            self.pos += size
            return values
        if etype == _STRING:
            self.spend(count, f"an array of {count} strings")
            self.need(8 * count, f"an array of {count} strings")
            if count <= KEEP_STRINGS:
                return [self.string() for _ in range(count)]
            self._skip_strings(count)
            return LongArray(count)
        if etype == _ARRAY:
            self.spend(count, f"an array of {count} arrays")
            self.need(12 * count, f"an array of {count} arrays")
            return [self.array(depth + 1) for _ in range(count)]
        raise self.error(f"metadata key {self.key!r} is an array of unknown GGUF type {etype}")

    def _skip_strings(self, count: int) -> None:
        buf, pos, size, unpack = self.buf, self.pos, self.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                break
            pos += 8 + unpack(buf, pos)[0]
        else:
            if pos <= size:
                self.pos = pos
                return
        if self.prefix:
            raise BeyondPrefix(self.path, f"an array of strings runs past the first {size} bytes read")
        raise self.error("truncated GGUF file: an array of strings runs past the end of the file")


def read_header(buf, path: str, file_size: int | None = None) -> Header:
    """Parse the header of a GGUF in `buf` (bytes or an mmap); raises GgufError only for bad input.
    `file_size` larger than buf: buf holds only the start of the file; BeyondPrefix when the header
    needs more of it (a value that runs past the end of the whole file is 'truncated' at once)."""
    if len(buf) < 24:
        raise GgufError(path, f"not a GGUF file ({len(buf)} bytes, too short for a GGUF header)")
    if buf[:4] != _MAGIC:
        raise GgufError(path, "not a GGUF file (no GGUF magic at the start)")
    c = _Cursor(buf, path, file_size)
    c.pos = 4
    version = c.u32()
    if version not in (2, 3):
        raise GgufError(path, f"unsupported GGUF version {version} (2 and 3 are read)")
    n_tensors, n_kv = c.u64(), c.u64()
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise GgufError(path, f"implausible GGUF header: {n_tensors} tensors and {n_kv} metadata entries "
                              f"(at most {MAX_TENSORS} and {MAX_KV} are read); the file is corrupt or crafted")
    meta: dict = {}
    for _ in range(n_kv):
        c.key = ""
        key = c.name(MAX_KEY, "a metadata key")
        c.key = key
        meta[key] = c.value(c.u32())
    c.key = ""
    tensors = []
    for _ in range(n_tensors):
        name = c.name(MAX_TENSOR_NAME, "a tensor name")
        n_dims = c.u32()
        if n_dims > 8:
            raise GgufError(path, f"corrupt tensor table (tensor {name!r} has {n_dims} dimensions)")
        dims = tuple(c.u64() for _ in range(n_dims))
        tensors.append((name, dims, c.u32(), c.u64()))
    return Header(version, meta, tensors, c.pos)
