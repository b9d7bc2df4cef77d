"""store/hubmeta.py against the fake hub (the real huggingface_hub client and HTTP): the facts of a GGUF read
from its first bytes with Range requests equal those of the same file on disk; config.json and the weights'
bytes of a vLLM repository equal those of the fetched directory; hostile metadata is a reason, never a
crash; the bytes read are bounded; the token stays on the hub; what was read is kept and read back."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("gguf")

from xgen_declare.manifests.source import parse_source  # noqa: E402
from xgen_declare.placement.gguf_facts import GgufError, read_gguf_facts  # noqa: E402
from xgen_declare.placement.vllm_checks import find_config, weights_bytes  # noqa: E402
from xgen_declare.store import hubmeta  # noqa: E402
from xgen_declare.store.hubmeta import MetaError, read_hub_facts  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402
from xgen_declare.desired import demands  # noqa: E402
from xgen_declare.testing.hostile_gguf import (STRING, array, split_gguf_parts, write_gguf,  # noqa: E402
                                               write_split_gguf)
from xgen_declare.tools.tinygguf import write_tiny_gguf  # noqa: E402

CONFIG = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "hidden_size": 128, "max_position_embeddings": 2048, "torch_dtype": "bfloat16"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.Q4_K_M.gguf")
    return path, path.read_bytes()


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as h:
        yield h


def read(hub, text, **kw):
    return read_hub_facts(parse_source(text), endpoint=hub.endpoint, timeout=20, **kw)


def same_as_file(got, path):
    local = read_gguf_facts(str(path))
    assert dataclasses.replace(got.facts.facts, path=local.path) == local
    return local


def ranges(hub):
    return [r["range"] for r in hub.requests if "/resolve/" in r["path"] or "/cdn/" in r["path"]]


def cdn_ranges(hub, name):
    """The Range of every GET of `name`'s bytes (logged before they are sent: bytes_served races the client)."""
    return [r["range"] for r in hub.requests if r["cdn"] and r["method"] == "GET" and r["path"].endswith("/" + name)]


def test_a_gguf_header_read_by_range_gives_the_facts_of_the_file(hub, tiny):
    path, data = tiny
    sha = hub.add_repo("org/t-GGUF", {"tiny.Q4_K_M.gguf": data, "tiny.Q8_0.gguf": b"x" * 100})
    got = read(hub, "hf://org/t-GGUF:Q4_K_M", first=1024)
    assert (got.facts.reason, got.facts.commit, got.facts.file) == (None, sha, "tiny.Q4_K_M.gguf")
    assert [(len(h), n) for h, n in got.heads] == [(16384, len(data))]
    local = same_as_file(got, path)
    assert local.weights_bytes > 0 and local.block_count == 2
    # 1 KiB, then 4x more while the header needs it: never the file (~0.5 MB)
    assert [r for r in ranges(hub)][::2] == ["bytes=0-1023", "bytes=1024-4095", "bytes=4096-16383"]
    assert cdn_ranges(hub, "tiny.Q4_K_M.gguf") == ["bytes=0-1023", "bytes=1024-4095", "bytes=4096-16383"]


def test_a_split_gguf_weighs_its_parts_as_on_disk_and_a_file_source_at_a_commit(hub, tmp_path):
    paths = write_split_gguf(tmp_path, "t", 3)
    sha = hub.add_repo("org/s-GGUF", {p.name: p.read_bytes() for p in paths})
    got = read(hub, f"hf://org/s-GGUF@{sha}/t-00001-of-00003.gguf")
    assert got.facts.file == "t-00001-of-00003.gguf" and len(got.heads) == 3
    local = demands.facts_of(str(paths[0]))  # the first part with the tensors of the others
    assert dataclasses.replace(got.facts.facts, path=local.path) == local
    assert local.weights_bytes == demands.facts_of(write_gguf(tmp_path / "whole.gguf")).weights_bytes
    paths[2].write_bytes(split_gguf_parts(2)[1])  # a last part of another split (5 tensors, not 3)
    sha = hub.commit("org/s-GGUF", {p.name: p.read_bytes() for p in paths})
    assert read(hub, f"hf://org/s-GGUF@{sha}/t-00001-of-00003.gguf").facts.reason == (
        f"hf://org/s-GGUF@{sha[:12]}/t-00001-of-00003.gguf: the 3 parts of this split GGUF hold 13 tensors but "
        "split.tensors.count is 11: a part is from another model or corrupt")


def test_a_vllm_repository_gives_config_json_and_the_weights_of_the_fetched_directory(hub, tmp_path):
    files = {"config.json": json.dumps(CONFIG).encode(), "model-00001-of-00002.safetensors": os.urandom(3000),
             "model-00002-of-00002.safetensors": os.urandom(1000), "model.safetensors.index.json": b"{}",
             "sub/extra.safetensors": b"y" * 50, "tokenizer.json": b"{}"}
    sha = hub.add_repo("org/m", files)
    got = read(hub, "hf://org/m@main").facts
    for name, data in files.items():  # the same files on disk, as the store lays out a snapshot
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    cfg, model_dir, warning = find_config(str(tmp_path))
    assert (got.reason, got.commit, got.config, got.weights) == (None, sha, cfg, weights_bytes(model_dir)) == \
        (None, sha, CONFIG, 4000)
    assert cdn_ranges(hub, "model-00001-of-00002.safetensors") == []


def local_reason(path) -> str:
    with pytest.raises(GgufError) as err:
        read_gguf_facts(str(path))
    return err.value.message


@pytest.mark.parametrize("bad", [
    {"tokenizer__ggml__tokens": array(STRING, 2**60)},   # a vocabulary that claims 2^60 strings
    {"llama__block_count": (10, (2**33).to_bytes(8, "little"))},  # a u64 of 2^33 layers
])
def test_hostile_headers_are_the_reason_the_file_gives(hub, tmp_path, bad):
    path = write_gguf(tmp_path / "h.gguf", **bad)
    sha = hub.add_repo("org/h-GGUF", {"h.gguf": open(path, "rb").read()})
    got = read(hub, "hf://org/h-GGUF/h.gguf").facts
    assert got.facts is None and got.reason == f"hf://org/h-GGUF@{sha[:12]}/h.gguf: {local_reason(path)}"


def test_not_a_gguf_and_a_header_beyond_the_limit(hub, tiny):
    _, data = tiny
    sha = hub.add_repo("org/x-GGUF", {"x.gguf": b"NOPE" + b"\0" * 100, "tiny.gguf": data})
    assert read(hub, "hf://org/x-GGUF/x.gguf").facts.reason == \
        f"hf://org/x-GGUF@{sha[:12]}/x.gguf: not a GGUF file (no GGUF magic at the start)"
    got = read(hub, "hf://org/x-GGUF/tiny.gguf", first=1024, limit=4096)
    assert got.facts.reason == (f"hf://org/x-GGUF@{sha[:12]}/tiny.gguf: the GGUF header is larger than the 4096 "
                                "bytes read from the hub (a crafted file, or one to fetch before it is placed)")
    assert cdn_ranges(hub, "tiny.gguf") == ["bytes=0-1023", "bytes=1024-4095"]


def test_a_truncated_range_is_worth_retrying_and_a_server_ignoring_range_is_read_up_to_the_bytes_asked(hub, tiny):
    path, data = tiny
    hub.add_repo("org/t-GGUF", {"t.gguf": data})
    hub.faults.drop_after, hub.faults.drop_times = {"t.gguf": 100}, 1
    with pytest.raises(MetaError, match=r"t\.gguf of org/t-GGUF"):
        read(hub, "hf://org/t-GGUF/t.gguf")
    hub.faults.ignore_range = True  # 200 with the whole file: the reader stops at what it asked for
    same_as_file(read(hub, "hf://org/t-GGUF/t.gguf", first=2048), path)


def test_config_json_missing_or_answered_404_or_broken(hub):
    weights = {"model.safetensors": b"w" * 10}
    sha = hub.add_repo("org/none", weights)
    assert read(hub, "hf://org/none").facts.reason == \
        f"no config.json in org/none@{sha[:12]}: vLLM pre-checks skipped"
    sha = hub.add_repo("org/gone", {"config.json": b"{}", **weights})
    hub.faults.not_found = {"config.json"}
    assert read(hub, "hf://org/gone").facts.reason == \
        f"config.json of org/gone@{sha[:12]}: the hub has no such file (HTTP 404)"
    hub.faults.not_found = set()
    sha = hub.add_repo("org/bad", {"config.json": b"[1, 2", **weights})
    assert read(hub, "hf://org/bad").facts.reason == f"config.json of org/bad@{sha[:12]}: not valid JSON"


def test_the_token_goes_to_the_hub_only_and_is_never_logged(hub, tiny, caplog):
    _, data = tiny
    hub.add_repo("org/p-GGUF", {"p.gguf": data}, token="hf_secret_token")
    with pytest.raises(MetaError, match="org/p-GGUF"):
        read(hub, "hf://org/p-GGUF/p.gguf")
    caplog.set_level(logging.DEBUG)
    got = read(hub, "hf://org/p-GGUF/p.gguf", token="hf_secret_token")
    assert got.facts.facts is not None
    cdn = [r for r in hub.requests if r["path"].startswith("/cdn/")]
    assert cdn and all(r["auth"] is None for r in cdn)
    assert all(r["auth"] == "Bearer hf_secret_token" for r in hub.requests if "/resolve/" in r["path"])
    assert "hf_secret_token" not in caplog.text


def test_what_was_read_is_kept_and_read_back_the_same(hub, tiny, tmp_path):
    path, data = tiny
    sha = hub.add_repo("org/t-GGUF", {"t.gguf": data})
    src = parse_source("hf://org/t-GGUF/t.gguf")
    got = read(hub, src.text)
    cache = tmp_path / "hubmeta"
    hubmeta.save(cache, src, got)
    assert hubmeta.cached_commit(cache, src) == sha
    assert hubmeta.load(cache, src, sha) == got.facts
    assert hubmeta.load(cache, src, "f" * 40) is None
    for f in cache.glob("*.head"):  # a kept header cut short: a reason, never a crash
        f.write_bytes(f.read_bytes()[:100])
    assert hubmeta.load(cache, src, sha).reason.startswith(f"hf://org/t-GGUF@{sha[:12]}/t.gguf: ")
    for f in cache.glob("*.json"):
        f.write_text("{not json")
    assert hubmeta.load(cache, src, sha) is None


def test_the_cache_keeps_the_entries_used_last_within_its_limit(hub, tiny, tmp_path):
    """STATE/hubmeta/ holds a header per source and commit: revisions rolled past and models removed must
    not fill the state dir. A save removes the least recently used entries (a load counts as a use)."""
    path, data = tiny
    cache = tmp_path / "hubmeta"
    kept = []
    for i in range(3):
        sha = hub.add_repo(f"org/t{i}-GGUF", {"t.gguf": data})
        src = parse_source(f"hf://org/t{i}-GGUF/t.gguf")
        hubmeta.save(cache, src, read(hub, src.text))
        kept.append((src, sha))
        for j, meta in enumerate(sorted(cache.glob("*.json"), key=os.path.getmtime)):
            os.utime(meta, (1000 + j, 1000 + j))  # one second apart, in the order they were used
    one = sum(f.stat().st_size for f in cache.iterdir() if f.suffix in (".json", ".head")) // 3
    assert hubmeta.load(cache, *kept[0]) is not None  # used now: the most recent
    removed = hubmeta.prune(cache, keep="none", limit=2 * one + one // 2)
    assert removed == [hubmeta._key(kept[1][0].text, kept[1][1])]
    assert hubmeta.load(cache, *kept[1]) is None
    assert hubmeta.load(cache, *kept[0]) is not None and hubmeta.load(cache, *kept[2]) is not None
    assert hubmeta.prune(cache, keep=hubmeta._key(kept[2][0].text, kept[2][1]), limit=0) == [
        hubmeta._key(kept[0][0].text, kept[0][1])]
    assert [p.stem for p in cache.glob("*.json")] == [hubmeta._key(kept[2][0].text, kept[2][1])]


def url_source(url: str, data: bytes, token_file: str | None = None):
    import hashlib
    src = {"url": url, "sha256": hashlib.sha256(data).hexdigest()}
    if token_file:
        src["token_file"] = token_file
    return parse_source(src)


def test_a_url_gguf_header_read_by_range_gives_the_facts_of_the_file(hub, tiny):
    path, data = tiny
    src = url_source(hub.add_file("u/tiny.gguf", data), data)
    got = read_hub_facts(src, timeout=20, first=1024)
    assert (got.facts.reason, got.facts.commit, got.facts.file) == (None, src.sha256, "tiny.gguf")
    same_as_file(got, path)
    gets = [r["range"] for r in hub.requests if r["path"] == "/files/u/tiny.gguf" and r["method"] == "GET"]
    assert gets == ["bytes=0-1023", "bytes=1024-4095", "bytes=4096-16383"]  # never the file (~0.5 MB)
    assert got.facts.basis() == (f"placement from the GGUF header read over HTTP ({src.text}, sha256 "
                                 f"{src.sha256[:12]}), before its file is fetched")


def test_a_url_token_goes_to_its_own_origin_only_and_a_refusal_is_worth_retrying(hub, tiny, caplog):
    _, data = tiny
    url = hub.add_file("p.gguf", data, token="url_secret")
    src = url_source(url, data)
    with pytest.raises(MetaError, match="HTTP 401"):
        read_hub_facts(src, timeout=20)
    caplog.set_level(logging.DEBUG)
    assert read_hub_facts(src, token="url_secret", timeout=20).facts.facts is not None
    hub.faults.redirect_files = True  # 302 to another origin: the token is not sent there
    hub.requests.clear()
    assert read_hub_facts(src, token="url_secret", timeout=20).facts.facts is not None
    elsewhere = [r for r in hub.requests if r["cdn"]]
    assert elsewhere and all(r["auth"] is None for r in elsewhere)
    assert all(r["auth"] == "Bearer url_secret" for r in hub.requests if not r["cdn"])
    assert "url_secret" not in caplog.text


def test_a_url_that_is_no_gguf_is_a_lasting_reason_and_a_missing_one_is_retried(hub, tiny):
    junk = b"not a gguf at all, but long enough"
    src = url_source(hub.add_file("x.gguf", junk), junk)
    got = read_hub_facts(src, timeout=20)
    assert got.facts.facts is None and got.facts.reason.startswith(f"{src.text} (sha256 {src.sha256[:12]}): ")
    with pytest.raises(MetaError, match="HTTP 404"):
        read_hub_facts(url_source(f"{hub.endpoint}/files/none.gguf", b"x"), timeout=20)


def test_a_url_header_is_kept_by_url_and_sha256(hub, tiny, tmp_path):
    _, data = tiny
    src = url_source(hub.add_file("k.gguf", data), data)
    got = read_hub_facts(src, timeout=20)
    cache = tmp_path / "hubmeta"
    hubmeta.save(cache, src, got)
    assert hubmeta.load(cache, src, src.sha256) == got.facts
    assert list(cache.glob("*.ref")) == []  # no branch to remember: the sha256 is the key
    other = url_source(src.text, data + b"x")  # the same URL, another sha256: not what was kept
    assert hubmeta.load(cache, other, other.sha256) is None
