"""The GGUF reader under hostile files (issue #21 finding 2): each one is a GgufError with a clear message,
within a deadline, never another exception, a hang or an allocation the size of a header field."""

from __future__ import annotations

import os
import struct

import pytest

from xgen_declare.placement import gguf_header
from xgen_declare.placement.gguf_facts import GgufError, read_gguf_facts
from xgen_declare.testing.deadline import within
from xgen_declare.testing.hostile_gguf import (ARRAY, STRING, U32, array, base_tensors, f32, nested_array, string,
                                               u32, u64, write_gguf)

GIB = 1 << 30
CORRUPT = "; the file is corrupt or not a model llama.cpp can load (re-download or re-convert it)"


def refused(path: str, seconds: float = 10.0) -> str:
    """The GgufError message for `path` (without the path), read within a deadline."""
    with pytest.raises(GgufError) as err:
        within(seconds, lambda: read_gguf_facts(path), "read_gguf_facts")
    assert err.value.path == path and str(err.value) == f"{path}: {err.value.message}"
    return err.value.message


def test_the_valid_base_file_reads(tmp_path):
    f = read_gguf_facts(write_gguf(tmp_path / "ok.gguf"))
    assert (f.architecture, f.block_count, f.embedding_length, f.head_count) == ("llama", 2, 64, [2, 2])


def test_nested_arrays_are_refused_not_recursed(tmp_path):
    p = write_gguf(tmp_path / "n.gguf", general__x=nested_array(5000))
    assert refused(p) == ("implausible GGUF header: metadata key 'general.x': arrays nested more than 3 deep; "
                          "the file is corrupt or crafted")


def test_an_array_of_two_nested_arrays_is_still_read(tmp_path):
    inner = struct.pack("<IQ", U32, 2) + struct.pack("<2I", 7, 8)
    p = write_gguf(tmp_path / "n2.gguf", general__x=array(ARRAY, 2, inner * 2))
    assert read_gguf_facts(p).metadata["general.x"] == [[7, 8], [7, 8]]


@pytest.mark.parametrize("key,value,said", [
    ("llama.block_count", string("abc"), "metadata llama.block_count is a string ('abc'), not an integer"),
    ("llama.embedding_length", f32(64.5), "metadata llama.embedding_length is a float (64.5), not an integer"),
    ("llama.attention.head_count", array(STRING, 2, struct.pack("<Q", 1) + b"x" + struct.pack("<Q", 1) + b"y"),
     "metadata llama.attention.head_count[0] is a string ('x'), not an integer"),
    ("llama.attention.head_count_kv", string("8"), "metadata llama.attention.head_count_kv is a string ('8'), "
                                                   "not an integer"),
    ("llama.feed_forward_length", string("big"), "metadata llama.feed_forward_length is a string ('big'), "
                                                 "not an integer"),
    ("llama.context_length", string("4k"), "metadata llama.context_length is a string ('4k'), not an integer"),
    ("llama.expert_count", string("8"), "metadata llama.expert_count is a string ('8'), not an integer"),
    ("general.alignment", string("32"), "metadata general.alignment is a string ('32'), not an integer"),
    ("general.alignment", u32(48), "metadata general.alignment = 48 is not a power of two"),
    ("llama.attention.key_length", u32(1 << 20), "metadata llama.attention.key_length = 1048576 is outside "
                                                  "0..65536, the range xgen-declare reads"),
])
def test_a_value_of_the_wrong_type_names_the_key(tmp_path, key, value, said):
    p = write_gguf(tmp_path / "t.gguf", **{key.replace(".", "__"): value})
    assert refused(p) == said + CORRUPT


def test_a_block_count_of_2_pow_33_is_refused_before_any_list_is_made(tmp_path):
    p = write_gguf(tmp_path / "b.gguf", llama__block_count=u64(2 ** 33))
    assert refused(p) == ("metadata llama.block_count = 8589934592: xgen-declare models 1..256 layers (the largest "
                          "published models have ~130)" + CORRUPT)


def test_a_string_array_of_2_pow_60_in_a_sparse_1_gib_file_is_implausible_at_once(tmp_path):
    p = write_gguf(tmp_path / "s.gguf", tensors=[], size=GIB, general__x=array(STRING, 2 ** 60))
    assert refused(p, seconds=5) == ("implausible GGUF header: metadata key 'general.x': an array of "
                                     "1152921504606846976 strings; at most 4194304 array elements are read in all; "
                                     "the file is corrupt or crafted")


def test_the_item_budget_counts_across_arrays(tmp_path, monkeypatch):
    """Within the budget each, over it together (the budget lowered to 1000 items: a small file)."""
    monkeypatch.setattr(gguf_header, "MAX_ITEMS", 1000)
    empty = array(STRING, 501, b"\0" * 8 * 501)
    p = write_gguf(tmp_path / "s2.gguf", general__a=empty, general__b=empty)
    assert refused(p) == ("implausible GGUF header: metadata key 'general.b': an array of 501 strings; at most 1000 "
                          "array elements are read in all; the file is corrupt or crafted")


def test_a_numeric_array_of_2_pow_60_is_skipped_in_constant_time(tmp_path):
    p = write_gguf(tmp_path / "a.gguf", size=GIB, general__x=array(U32, 2 ** 60))
    assert refused(p, seconds=5) == "truncated GGUF file: an array of 1152921504606846976 values runs past the end " \
                                    "of the file"


def test_a_fifo_named_gguf_is_refused_without_blocking(tmp_path):
    p = str(tmp_path / "model.gguf")
    os.mkfifo(p)
    assert refused(p, seconds=5) == "is a FIFO (named pipe), not a regular file (point model_path at a GGUF file)"


def test_a_link_to_a_device_is_refused(tmp_path):
    p = tmp_path / "zero.gguf"
    p.symlink_to("/dev/zero")
    assert refused(str(p), seconds=5) == "is a character device, not a regular file (point model_path at a GGUF file)"


def test_counts_beyond_the_limits(tmp_path):
    p = tmp_path / "c.gguf"
    p.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 2 ** 40) + b"\0" * 64)
    assert refused(str(p)) == ("implausible GGUF header: 1 tensors and 1099511627776 metadata entries (at most "
                               "65536 and 65536 are read); the file is corrupt or crafted")


def test_a_key_of_a_terabyte_is_refused(tmp_path):
    p = tmp_path / "k.gguf"
    p.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40) + b"\0" * 64)
    assert refused(str(p)) == ("implausible GGUF header: a metadata key of 1099511627776 bytes (at most 1024); "
                               "the file is corrupt or crafted")


def test_a_tensor_name_with_a_5000_digit_layer_is_refused(tmp_path):
    p = write_gguf(tmp_path / "d.gguf", tensors=base_tensors() + [("blk." + "9" * 5000 + ".x", (4,))])
    assert refused(p).startswith("implausible GGUF header: a tensor name of 5006 bytes (at most 256)")


def test_decoded_text_has_a_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_header, "MAX_TEXT", 4096)
    p = write_gguf(tmp_path / "t.gguf", general__a=string("x" * 3000), general__b=string("y" * 3000))
    assert "more than 0 MiB of text in the header" in refused(p)


def test_a_long_string_value_is_skipped_not_decoded(tmp_path):
    p = write_gguf(tmp_path / "l.gguf", tokenizer__chat_template=string("x" * (2 << 20)))
    f = read_gguf_facts(p)
    assert f.metadata["tokenizer.chat_template"] == 2 << 20 and f.block_count == 2
    q = write_gguf(tmp_path / "la.gguf", general__architecture=string("x" * (2 << 20)))
    assert refused(q) == "metadata general.architecture is a string of 2097152 bytes, not a name; the file is corrupt"


def test_per_layer_arrays_longer_than_64_layers_are_kept(tmp_path):
    """Numeric arrays of up to 4096 values are kept: a per-layer head_count_kv of 80 layers is read as
    80 values (it was read as its length, 80, for every layer)."""
    kv = [8 if i % 2 else 0 for i in range(80)]
    p = write_gguf(tmp_path / "p.gguf", tensors=base_tensors(80), llama__block_count=u32(80),
                   llama__attention__head_count_kv=array(U32, 80, struct.pack("<80I", *kv)))
    assert read_gguf_facts(p).head_count_kv == kv


def test_the_header_is_read_into_memory_never_mapped(tmp_path, monkeypatch):
    """A file truncated while mapped faults its reader (SIGBUS kills the daemon): the header is read with
    pread in growing prefixes (1 MiB, then 4x) instead, and a header bigger than the first read still
    parses whole."""
    import mmap

    import struct

    from xgen_declare.placement import gguf_facts
    from xgen_declare.testing.hostile_gguf import STRING, array, base_metadata, write_gguf

    def no_mmap(*a, **k):
        raise AssertionError("mmap used")

    monkeypatch.setattr(mmap, "mmap", no_mmap)
    path = tmp_path / "m.gguf"
    tokens = b"".join(struct.pack("<Q", 12) + b"token-%06d" % i for i in range(120_000))  # 2.4 MB of strings
    write_gguf(path, {**base_metadata(), "tokenizer.ggml.tokens": array(STRING, 120_000, tokens)})
    reads: list[int] = []
    real_pread = gguf_facts.os.pread
    monkeypatch.setattr(gguf_facts.os, "pread", lambda fd, n, off: reads.append(n) or real_pread(fd, n, off))
    facts = gguf_facts.read_gguf_facts(str(path))
    assert facts.block_count > 0
    assert reads[0] == 1 << 20 and reads[-1] > reads[0], reads


def test_a_file_that_shrinks_while_read_is_a_gguf_error(tmp_path, monkeypatch):
    from xgen_declare.placement import gguf_facts

    p = write_gguf(tmp_path / "a.gguf")
    real_pread = gguf_facts.os.pread
    monkeypatch.setattr(gguf_facts.os, "pread", lambda fd, n, off: real_pread(fd, n, off)[:100])
    assert refused(p, seconds=5) == ("the file shrank while it was read (being rewritten?); it is read again when it "
                                     "changes")
