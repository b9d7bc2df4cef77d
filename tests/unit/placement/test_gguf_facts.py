import os
import time

import pytest

from xgen_declare.placement.gguf_facts import GgufError, ggml_type_size, read_gguf_facts
from xgen_declare.testing.synthetic import Shape, write_sparse_gguf


def test_llama3_8b_facts(sparse):
    f = read_gguf_facts(sparse("llama3-8b"))
    assert (f.architecture, f.block_count, f.embedding_length, f.context_length) == ("llama", 32, 4096, 8192)
    assert f.head_count == [32] * 32 and f.head_count_kv == [8] * 32
    assert (f.key_length, f.value_length, f.vocab_size) == (128, 128, 128256)
    assert len(f.tensors) == 1 + 32 * 9 + 2
    # 8.03 B parameters in f16 plus the f32 norms
    params = 2 * 128256 * 4096 + 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 14336 * 4096)
    assert f.weights_bytes == params * 2 + (32 * 2 + 1) * 4096 * 4
    assert f.tensor("blk.0.attn_k.weight").shape == (4096, 1024)
    assert f.tensor("blk.0.attn_k.weight").nbytes == 4096 * 1024 * 2
    assert f.file_size == os.path.getsize(sparse("llama3-8b"))


def test_quantized_sizes(sparse):
    f = read_gguf_facts(sparse("llama3-70b", "Q4_K"))
    q = f.tensor("blk.0.ffn_up.weight")
    assert q.type == "q4_K" and q.nbytes == 28672 * 8192 // 256 * 144
    assert f.tensor("blk.0.attn_norm.weight").type == "f32"
    assert ggml_type_size("q8_0", 1024) == 1024 // 32 * 34


def test_70b_reads_fast(sparse):
    path = sparse("llama3-70b", "Q4_K")
    start = time.perf_counter()
    f = read_gguf_facts(path)
    assert time.perf_counter() - start < 0.5
    assert f.block_count == 80 and f.file_size > 35 * 2**30


def test_moe_and_per_layer_kv_heads(sparse):
    f = read_gguf_facts(sparse("mixtral-8x7b"))
    assert (f.expert_count, f.expert_used_count) == (8, 2)
    g = read_gguf_facts(sparse("tiny", n_head_kv=[2, 0, 2, 4]))
    assert g.head_count_kv == [2, 0, 2, 4]
    assert g.n_embd_k_gqa == [64, 0, 64, 128]


def test_vocabulary_array_is_skipped_not_parsed(tmp_path):
    path = write_sparse_gguf(tmp_path / "v.gguf", "tiny", vocab=True)
    f = read_gguf_facts(str(path))
    assert f.metadata["tokenizer.ggml.tokens"] == 1024 and f.vocab_size == 1024


def test_not_gguf(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(GgufError) as e:
        read_gguf_facts(str(p))
    assert str(e.value) == f"{p}: not a GGUF file (no GGUF magic at the start)"


def test_truncated_header(sparse, tmp_path):
    data = open(sparse("tiny"), "rb").read(2000)
    p = tmp_path / "cut.gguf"
    p.write_bytes(data)
    with pytest.raises(GgufError, match=r"truncated GGUF file"):
        read_gguf_facts(str(p))


def test_truncated_data(sparse, tmp_path):
    p = tmp_path / "short.gguf"
    p.write_bytes(open(sparse("tiny"), "rb").read())
    os.truncate(p, os.path.getsize(p) - 4096)
    with pytest.raises(GgufError, match=r"truncated GGUF file: the tensor data needs \d+ bytes but the file has"):
        read_gguf_facts(str(p))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(GgufError, match="cannot read"):
        read_gguf_facts(str(tmp_path / "nope.gguf"))
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(GgufError, match=r"not a GGUF file \(0 bytes"):
        read_gguf_facts(str(tmp_path / "empty.gguf"))


def test_missing_block_count(tmp_path):
    path = write_sparse_gguf(tmp_path / "m.gguf", Shape("mamba", 2, 64, 1, 1, 128, 400), vocab=False)
    f = read_gguf_facts(str(path))
    assert f.architecture == "mamba"
