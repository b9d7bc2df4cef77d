"""store/wanted: the sources the manifests name, read without the rest of the spec: conflicts between two
checksums of one file (both places named), token files read bounded, one fetch per distinct source."""

from __future__ import annotations

import json
import os

from xgen_declare.store.wanted import group_by_source, wanted_sources


def manifest(name: str, source, field: str = "source") -> str:
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  {field}: {json.dumps(source)}\n"


def test_one_file_with_two_checksums_names_both_places(write):
    write("a.yaml", manifest("a", {"url": "hf://o/m-GGUF/x.gguf", "sha256": "a" * 64}))
    write("b.yaml", manifest("b", {"url": "hf://o/m-GGUF@main/x.gguf", "sha256": "b" * 64}))
    write("c.yaml", manifest("c", {"url": "hf://o/m-GGUF@v2/x.gguf", "sha256": "c" * 64}))  # another revision
    items, problems = wanted_sources([str(write.root)])
    assert [p.format() for p in problems] == [
        f"{write.root}/b.yaml:6: spec.source: names the file of {write.root}/a.yaml:6 (a) with another sha256 "
        f"({'b' * 16}, there {'a' * 16}) (one file has one checksum: correct the wrong one (sha256sum FILE prints it))"]
    assert [w.name for w in items] == ["a", "b", "c"]


def test_same_source_is_one_group_and_local_paths_only_when_asked(write):
    write("a.yaml", manifest("a", "hf://o/m-GGUF:Q4_K_M"))
    write("b.yaml", manifest("b", "hf://o/m-GGUF:Q4_K_M"))
    write("c.yaml", manifest("c", "hf://o/m-GGUF:Q8_0"))
    write("d.yaml", manifest("d", "/models/x.gguf", field="model_path"))
    items, problems = wanted_sources([str(write.root)])
    assert problems == [] and [[w.name for w in g] for g in group_by_source(items)] == [["a", "b"], ["c"]]
    items, _ = wanted_sources([str(write.root)], local=True)
    assert [(w.name, w.source.kind) for w in items][-1] == ("d", "path")


def test_token_file_is_read_bounded_and_never_in_a_repr(write, tmp_path):
    (write.root / "tok").write_text("hf_secret\n")
    os.mkfifo(write.root / "fifo")
    write("a.yaml", manifest("a", {"url": "hf://o/m", "token_file": "tok"}))
    write("b.yaml", manifest("b", {"url": "hf://o/n", "token_file": "fifo"}))
    write("c.yaml", manifest("c", {"url": "hf://o/p", "token_file": str(tmp_path / "empty")}))
    (tmp_path / "empty").write_text(" \n")
    items, problems = wanted_sources([str(write.root)])
    assert [(w.name, w.token) for w in items] == [("a", "hf_secret")] and "hf_secret" not in repr(items)
    assert [p.format() for p in problems] == [
        f"{write.root}/b.yaml:6: spec.source.token_file: {write.root}/fifo: is a FIFO (named pipe), not a regular "
        "file (point it at a regular file)",
        f"{write.root}/c.yaml:6: spec.source.token_file: {tmp_path}/empty: holds no token (empty, or spaces or "
        "control characters inside) (write the access token alone into that file)"]


def test_a_model_path_naming_a_hub_repo_is_its_hf_source(write):
    """issue 23: `pull` fetches (and `store gc` keeps) what a hub id in model_path names, as for its hf:// form;
    one group with the same source written as source:."""
    write("a.yaml", manifest("a", "hf://o/m-GGUF:Q4_K_M"))
    write("b.yaml", manifest("b", "o/m-GGUF:Q4_K_M", field="model_path"))
    write("c.yaml", manifest("c", "Qwen/Qwen3-0.6B", field="model_path"))  # backend auto: a vLLM id
    write("d.yaml", manifest("d", "/models/x.gguf", field="model_path"))
    items, problems = wanted_sources([str(write.root)])
    assert problems == [] and [(w.name, w.source.text, w.source.implied) for w in items] == [
        ("a", "hf://o/m-GGUF:Q4_K_M", False), ("b", "hf://o/m-GGUF:Q4_K_M", True), ("c", "hf://Qwen/Qwen3-0.6B", True)]
    assert [[w.name for w in g] for g in group_by_source(items)] == [["a", "b"], ["c"]]
    assert items[1].line == 6  # the model_path line


def test_a_model_path_hub_repo_takes_the_manifests_env_hf_token(write):
    """An implied source has no token_file: the manifest's env HF_TOKEN (what its backend was given)."""
    write("a.yaml", manifest("a", "o/private-GGUF:Q4_K_M", field="model_path") + '  env: {HF_TOKEN: " hf_x "}\n')
    write("b.yaml", manifest("b", "o/public", field="model_path"))
    items, problems = wanted_sources([str(write.root)])
    assert problems == [] and [(w.name, w.token) for w in items] == [("a", "hf_x"), ("b", None)]
    assert "hf_x" not in repr(items)
    items, _ = wanted_sources([str(write.root)], tokens=False)
    assert [w.token for w in items] == [None, None]
