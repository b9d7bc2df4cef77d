"""placement/gguf_split.py: a split GGUF is placed as the whole model (the first part's metadata with the
tensors of every part), as the same model unsplit would be; a missing part, a part from another model or a
first part not named as gguf-split names it is a GgufError naming the file, never a wrong figure."""

from __future__ import annotations

import pytest

from xgen_declare.desired import demands
from xgen_declare.placement.gguf_facts import GgufError
from xgen_declare.testing.hostile_gguf import write_gguf, write_split_gguf


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(demands, "_FACTS", {})


def test_a_split_gguf_weighs_what_the_same_model_unsplit_weighs(tmp_path):
    whole = demands.facts_of(write_gguf(tmp_path / "whole.gguf"))
    for count in (2, 3):
        first = write_split_gguf(tmp_path, f"m{count}", count)[0]
        facts = demands.facts_of(str(first))
        assert [t.name for t in facts.tensors] == [t.name for t in whole.tensors]
        assert (facts.weights_bytes, facts.layer_bytes()) == (whole.weights_bytes, whole.layer_bytes())
        assert facts.path == str(first) and facts.block_count == whole.block_count == 2


def test_a_missing_part_is_placement_unknown_naming_it(tmp_path):
    first, second = write_split_gguf(tmp_path)
    second.unlink()
    with pytest.raises(GgufError) as err:
        demands.facts_of(str(first))
    assert str(err.value) == (f"{first}: part m-00002-of-00002.gguf of this split GGUF is missing: its weights cannot "
                              "be counted (put every part beside the first)")


def test_a_part_of_another_model_or_a_first_part_named_otherwise(tmp_path):
    first, _ = write_split_gguf(tmp_path, tensors_count=99)
    with pytest.raises(GgufError, match=r"the 2 parts of this split GGUF hold 11 tensors but split.tensors.count is "
                                        r"99: a part is from another model or corrupt$"):
        demands.facts_of(str(first))
    renamed = tmp_path / "renamed.gguf"
    write_split_gguf(tmp_path, "n")[0].rename(renamed)
    with pytest.raises(GgufError, match=r"a split GGUF of 2 parts \(split.count\) whose first part is not named "
                                        r"STEM-00001-of-00002.gguf"):
        demands.facts_of(str(renamed))
