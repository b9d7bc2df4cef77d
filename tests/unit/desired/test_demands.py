"""desired/demands.py: what a model file gave placement is cached by file identity, failures included,
and no exception but GgufError leaves facts_of; one model's failure is that model's warning."""

from __future__ import annotations

import os

import pytest

from xgen_declare.processes.settings import Placed
from xgen_declare.desired import demands
from xgen_declare.placement.gguf_facts import GgufError
from xgen_declare.testing.hostile_gguf import string, write_gguf


@pytest.fixture
def reads(monkeypatch):
    """Count the calls of read_gguf_facts made through demands (with an empty cache)."""
    monkeypatch.setattr(demands, "_FACTS", {})
    calls: list[str] = []
    real = demands.read_gguf_facts

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(demands, "read_gguf_facts", counted)
    return calls


def test_a_bad_file_costs_one_parse_not_one_per_pass(tmp_path, reads):
    p = write_gguf(tmp_path / "bad.gguf", llama__block_count=string("abc"))
    for _ in range(3):
        with pytest.raises(GgufError, match=r"metadata llama.block_count is a string \('abc'\), not an integer"):
            demands.facts_of(p)
    assert reads == [p]
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # another identity: read again
    with pytest.raises(GgufError):
        demands.facts_of(p)
    assert reads == [p, p]


def test_good_facts_are_cached_by_identity_too(tmp_path, reads):
    p = write_gguf(tmp_path / "ok.gguf")
    assert demands.facts_of(p) is demands.facts_of(p) and reads == [p]
    os.replace(write_gguf(tmp_path / "other.gguf"), p)  # same path and size, another inode
    assert demands.facts_of(p).path == p and reads == [p, p]


def test_any_other_exception_while_reading_is_a_gguf_error_for_that_file(tmp_path, monkeypatch):
    monkeypatch.setattr(demands, "_FACTS", {})
    p = write_gguf(tmp_path / "x.gguf")

    def boom(path):
        raise RuntimeError("a gap in the reader")

    monkeypatch.setattr(demands, "read_gguf_facts", boom)
    with pytest.raises(GgufError) as err:
        demands.facts_of(p)
    assert str(err.value) == f"{p}: cannot be read for placement (RuntimeError: a gap in the reader)"


def test_swa_full_in_extra_args_reaches_the_kv_prediction():
    from types import SimpleNamespace

    spec = dict(ctx_size=8192, parallel=1, cache_type_k="f16", cache_type_v="f16", flash_attn="auto")
    on = demands._settings(SimpleNamespace(spec=SimpleNamespace(**spec, extra_args=["--swa-full"])), "llama-server-cpu")
    off = demands._settings(SimpleNamespace(spec=SimpleNamespace(**spec, extra_args=[])), "llama-server-cpu")
    assert on.swa_full and not off.swa_full


@pytest.mark.parametrize("placed,want", [({"n_gpu_layers": 33, "n_cpu_moe": "all"}, 32),
                                         ({"n_gpu_layers": 33, "n_cpu_moe": 5}, 5),
                                         ({"n_gpu_layers": 33}, 0), ({}, None), (None, None),
                                         ({"n_gpu_layers": 33, "n_cpu_moe": "x"}, None)])
def test_previous_cpu_moe_reads_the_record(placed, want):
    """A process started with `n_cpu_moe: all` (--cpu-moe) holds every block's experts on the host."""
    assert demands.previous_cpu_moe(Placed.from_json(placed), 32) == want  # the record's JSON, read back
