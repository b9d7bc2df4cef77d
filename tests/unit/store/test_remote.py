"""store/remote.py: which files of a repository a source means (pure: the listing is plain data)."""

from __future__ import annotations

import pytest

from xgen_declare.errors import FetchError
from xgen_declare.manifests.source import parse_source
from xgen_declare.store.remote import RemoteFile, pick_files

C = "c" * 40


def listing(*paths: str) -> dict[str, RemoteFile]:
    return {p: RemoteFile(p, 10) for p in paths}


def picked(source: str, *paths: str) -> list[str]:
    return [f.path for f in pick_files(parse_source(source), listing(*paths), C)]


def test_a_file_source_and_its_split_parts():
    assert picked("hf://o/m-GGUF/a.gguf", "a.gguf", "b.gguf") == ["a.gguf"]
    parts = [f"x-0000{i}-of-00002.gguf" for i in (1, 2)]
    assert picked("hf://o/m-GGUF/x-00001-of-00002.gguf", *parts, "y.gguf") == parts
    with pytest.raises(FetchError) as err:
        picked("hf://o/m-GGUF/x-00001-of-00002.gguf", parts[0])
    assert err.value.blocked and str(err.value) == (
        "x-00002-of-00002.gguf is not in o/m-GGUF at commit cccccccccccc; check the file name (the hub lists the "
        "repository's files) or the revision")


def test_a_quant_picks_one_model():
    files = ["m.Q4_K_M.gguf", "m.Q4_K_S.gguf", "m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]
    assert picked("hf://o/m-GGUF:Q4_K_M", *files) == ["m.Q4_K_M.gguf"]
    assert picked("hf://o/m-GGUF:q8_0", *files) == files[2:]
    with pytest.raises(FetchError, match=r"^o/m-GGUF@cccccccccccc has no \.gguf file for :IQ2_XS"):
        picked("hf://o/m-GGUF:IQ2_XS", *files)
    with pytest.raises(FetchError, match=r"several files match :Q4_K_M \(a/m.Q4_K_M.gguf, b/m.Q4_K_M.gguf\)"):
        picked("hf://o/m-GGUF:Q4_K_M", "a/m.Q4_K_M.gguf", "b/m.Q4_K_M.gguf")


def test_a_whole_repository():
    assert picked("hf://o/m", "config.json", "model.safetensors", "tok.json") == \
        ["config.json", "model.safetensors", "tok.json"]
    # a repository of GGUF files means one of them, as llama.cpp picks it
    assert picked("hf://o/m-GGUF", "README.md", "m.Q8_0.gguf", "m.Q4_K_M.gguf") == ["m.Q4_K_M.gguf"]
    assert picked("hf://o/m-GGUF", "m.Q8_0.gguf", "m.F16.gguf") == ["m.F16.gguf"]


def test_a_listing_without_checksums_is_refused_before_any_byte(tmp_path, monkeypatch):
    from xgen_declare.config import Store
    from xgen_declare.store import fetch as fetch_mod
    monkeypatch.setattr(fetch_mod, "_resolve", lambda source, endpoint, token: (C, listing("a.gguf")))
    with pytest.raises(FetchError) as err:
        fetch_mod.fetch(parse_source("hf://o/m-GGUF/a.gguf"), Store(), tmp_path, endpoint="http://127.0.0.1:9")
    assert err.value.blocked and str(err.value) == (
        "http://127.0.0.1:9 lists no checksum for a.gguf of o/m-GGUF; check that HF_ENDPOINT is a "
        "HuggingFace-compatible hub")
    assert list(tmp_path.iterdir()) == []  # nothing written (it named a blob "None" before)
