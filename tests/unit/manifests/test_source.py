"""`spec.source` (issue 23): each form parsed into a typed Source (no network), each bad form refused with
the field, its line and an example; `model_path` keeps working and a manifest gives one of the two;
`render` shows the source as written."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, model_yaml
from xgen_declare.manifests.load import load_paths
from xgen_declare.manifests.source import Source, SourceError, implied_source, parse_source

SHA = "ab" * 32
INVENTORY = str(REPO / "tests" / "fixtures" / "all-backends.yaml")


def manifest(source_line: str, name: str = "m", extra: str = "") -> str:
    return f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  {source_line}\n{extra}"


def problems(write, text: str) -> list[str]:
    write("m.yaml", text)
    return [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems]


# ---- the parser ---------------------------------------------------------------------------------------

def test_hf_repo_with_and_without_revision():
    assert parse_source("hf://Qwen/Qwen3-0.6B") == Source("hf", "hf://Qwen/Qwen3-0.6B", repo="Qwen/Qwen3-0.6B")
    src = parse_source("hf://Qwen/Qwen3-0.6B@" + "c" * 40)
    assert (src.repo, src.revision, src.pinned, src.model_path()) == ("Qwen/Qwen3-0.6B", "c" * 40, True,
                                                                      "Qwen/Qwen3-0.6B")
    assert parse_source("hf://org/m@refs/pr/3").revision == "refs/pr/3"
    assert not parse_source("hf://org/m@main").pinned


def test_hf_file_and_quant():
    f = parse_source("hf://org/m-GGUF@v1.2/sub/m.Q4_K_M.gguf")
    assert (f.repo, f.revision, f.file, f.files, f.quant) == ("org/m-GGUF", "v1.2", "sub/m.Q4_K_M.gguf",
                                                               ("sub/m.Q4_K_M.gguf",), None)
    q = parse_source("hf://org/m-GGUF:Q4_K_M")
    assert (q.repo, q.revision, q.quant, q.model_path()) == ("org/m-GGUF", None, "Q4_K_M", "org/m-GGUF:Q4_K_M")
    assert parse_source("hf://org/m-GGUF@v2:Q8_0").revision == "v2"


def test_split_gguf_is_one_source_of_all_its_parts():
    s = parse_source("hf://org/big-GGUF@main/Q4/big-Q4_K_M-00001-of-00003.gguf")
    assert s.files == ("Q4/big-Q4_K_M-00001-of-00003.gguf", "Q4/big-Q4_K_M-00002-of-00003.gguf",
                       "Q4/big-Q4_K_M-00003-of-00003.gguf")
    with pytest.raises(SourceError) as err:
        parse_source("hf://org/big-GGUF/big-00002-of-00003.gguf")
    assert str(err.value) == ("names part 2 of a split GGUF; name its first part big-00001-of-00003.gguf "
                              "(the source is all 3 parts)")


def test_url_needs_sha256_and_https():
    u = parse_source({"url": "https://example.org/m/x.gguf?sig=1", "sha256": SHA.upper()})
    assert (u.kind, u.url, u.sha256, u.pinned) == ("url", "https://example.org/m/x.gguf?sig=1", SHA, True)
    assert u.shown() == f"https://example.org/m/x.gguf?sig=1 (sha256 {SHA})"
    assert parse_source({"url": "http://127.0.0.1:8/x.gguf", "sha256": SHA}).kind == "url"
    cases = {
        "https://example.org/x.gguf": "a URL source needs the file's sha256; write source: {url: "
                                      "https://example.org/x.gguf, sha256: <64 hex>}",
        "http://example.org/x.gguf": "plain http is accepted only from this host (loopback); use https",
        "https://u:p@example.org/x.gguf": "must not carry credentials (they would be shown in plans and logs); "
                                          "put the token in a secret file",
        "https://example.org/x.bin": "a URL source must name a .gguf file (its path ends in .gguf); for other "
                                     "models use an hf:// source or a local path",
    }
    for text, message in cases.items():
        with pytest.raises(SourceError) as err:
            parse_source(text)
        assert str(err.value) == message, text
    with pytest.raises(SourceError, match="^the mapping form needs `sha256`"):
        parse_source({"url": "https://example.org/x.gguf"})
    with pytest.raises(SourceError, match="^sha256 must be the file's SHA-256 as 64 hex digits"):
        parse_source({"url": "https://example.org/x.gguf", "sha256": "abc"})


def test_local_paths_and_bad_forms():
    assert parse_source("./models/x.gguf") == Source("path", "./models/x.gguf", path="./models/x.gguf")
    assert parse_source("/srv/qwen").model_path() == "/srv/qwen"
    bad = {
        "hf://org": "'hf://org' is not a HuggingFace source",
        "hf://org/m/../x.gguf": "'hf://org/m/../x.gguf' is not a HuggingFace source",
        "hf://org/m@v1/config.json": "names the file 'config.json': a file source must be a .gguf file",
        "s3://b/x.gguf": "'s3' is not a source scheme",
        "-x.gguf": "must not start with '-'",
        "a\nb": "must not contain control characters",
    }
    for text, start in bad.items():
        with pytest.raises(SourceError) as err:
            parse_source(text)
        assert str(err.value).startswith(start), (text, str(err.value))
    with pytest.raises(SourceError, match="^is 5007 characters long; the limit is 4096"):
        parse_source("hf://" + "a-" * 2500 + "/m")
    # long hostile strings are parsed in linear time (no regex backtracking)
    import time
    t0 = time.monotonic()
    for text in ("hf://" + "a." * 2000 + "!", "hf://o/" + "a/" * 2000 + "!", "hf://o/m@" + "v." * 2000 + "/"):
        with pytest.raises(SourceError):
            parse_source(text)
    assert time.monotonic() - t0 < 2
    with pytest.raises(SourceError, match="^sha256 pins one file"):
        parse_source({"url": "hf://org/m-GGUF:Q4_K_M", "sha256": SHA})


# ---- in a manifest ------------------------------------------------------------------------------------

def test_source_fills_model_path_as_the_equivalent_spec(write):
    write("m.yaml", manifest("source: hf://org/m-GGUF/m.Q4_K_M.gguf") + "---\n" +
          manifest("source: hf://Qwen/Qwen3-0.6B", name="v") + "---\n" + manifest("source: ./x.gguf", name="p"))
    result = load_paths([str(write.root)])
    assert result.problems == []
    got = {m.name: (m.spec.model_path, m.spec.hf_file, m.spec.is_set("model_path")) for m in result.models}
    assert got == {"m": ("org/m-GGUF", "m.Q4_K_M.gguf", False), "v": ("Qwen/Qwen3-0.6B", None, False),
                   "p": ("./x.gguf", None, False)}
    assert result.models[0].spec.model_dump()["source"] == "hf://org/m-GGUF/m.Q4_K_M.gguf"


def test_model_path_or_source_exactly_one(write):
    assert problems(write, manifest("backend: auto")) == [
        "5: spec.model_path: is missing: give model_path or source (e.g. model_path: /models/x.gguf or "
        "source: hf://org/model-GGUF:Q4_K_M)"]
    assert problems(write, manifest("source: hf://org/m-GGUF:Q4_K_M", extra="  model_path: /x.gguf\n")) == [
        "6: spec.source: is given with model_path: give one of them (keep source, which names where the files "
        "come from, and remove model_path)"]
    assert problems(write, manifest("source: hf://org/m-GGUF:Q4_K_M", extra="  hf_file: a.gguf\n")) == [
        "7: spec.hf_file: does not go with source (name the file in the source instead: "
        "hf://org/m-GGUF@REVISION/FILE.gguf)"]


def test_bad_source_names_file_line_field_and_an_example(write):
    assert problems(write, manifest("backend: auto", extra="  source: s3://bucket/x.gguf\n")) == [
        "7: spec.source: 's3' is not a source scheme (write one of hf://Qwen/Qwen3-0.6B@main, "
        "hf://org/model-GGUF:Q4_K_M, hf://org/model-GGUF@v1/model.Q4_K_M.gguf, {url: https://host/x.gguf, "
        "sha256: <64 hex>} or a local path)"]
    assert problems(write, manifest("source: https://h.example/x.gguf")) == [
        "6: spec.source: a URL source needs the file's sha256 (write source: {url: https://h.example/x.gguf, "
        "sha256: <64 hex>})"]


def test_url_source_and_a_revision_are_valid(write):
    """The daemon fetches both into the store (issue 23): nothing to warn about."""
    assert problems(write, manifest(f"source: {{url: 'https://h.example/x.gguf', sha256: {SHA}}}")) == []
    assert problems(write, manifest("source: hf://org/m-GGUF@v1:Q4_K_M")) == []
    assert problems(write, manifest("source: hf://org/m-GGUF@main:Q4_K_M")) == []


def test_render_shows_the_source_as_written(cli, write):
    write("m.yaml", manifest("source: hf://org/m-GGUF/m.Q4_K_M.gguf"))
    r = cli("render", str(write.root), "-o", "shell", "--inventory", INVENTORY)
    assert r.code == 0, r.err
    assert "# source: hf://org/m-GGUF/m.Q4_K_M.gguf\n" in r.out
    assert "--hf-repo org/m-GGUF" in r.out.replace(" \\\n  ", " ")
    r = cli("render", str(write.root), "-o", "json", "--inventory", INVENTORY)
    assert '"source": "hf://org/m-GGUF/m.Q4_K_M.gguf"' in r.out
    r = cli("render", str(write.root), "--inventory", INVENTORY)
    assert "source of m: hf://org/m-GGUF/m.Q4_K_M.gguf\n" in r.out
    r = cli("validate", str(write.root))
    assert (r.code, r.out) == (0, "ok: 1 model(s) in 1 file(s)\n")


def test_token_file_in_the_mapping_form():
    hf = parse_source({"url": "hf://org/private-GGUF:Q4_K_M", "token_file": "secrets/hf"})
    assert (hf.kind, hf.repo, hf.quant, hf.sha256, hf.token_file) == ("hf", "org/private-GGUF", "Q4_K_M", None,
                                                                      "secrets/hf")
    assert hf.to_json() == {"url": "hf://org/private-GGUF:Q4_K_M", "token_file": "secrets/hf"}
    url = parse_source({"url": "https://example.org/x.gguf", "sha256": SHA.upper(), "token_file": "/etc/t"})
    assert url.to_json() == {"url": "https://example.org/x.gguf", "sha256": SHA.lower(), "token_file": "/etc/t"}
    assert url.shown() == f"https://example.org/x.gguf (sha256 {SHA.lower()})"  # the token file is not shown
    cases = {
        # a URL still needs its checksum with a token
        "https://example.org/x.gguf": "a URL source needs the file's sha256; write source: {url: "
                                      "https://example.org/x.gguf, sha256: <64 hex>}",
        "./local.gguf": "token_file applies to hub and https sources; a local file is used as it is: remove token_file",
    }
    for text, message in cases.items():
        with pytest.raises(SourceError) as err:
            parse_source({"url": text, "token_file": "t"})
        assert str(err.value) == message, text
    for bad in ("", "a\nb", 3):
        with pytest.raises(SourceError, match="^token_file must be the path of a file holding the token"):
            parse_source({"url": "hf://o/m", "token_file": bad})


@pytest.mark.parametrize("spec, text", [
    ({"model_path": "Qwen/Qwen3-0.6B"}, "hf://Qwen/Qwen3-0.6B"),                        # backend auto: vLLM's id
    ({"model_path": "Qwen/Qwen3-0.6B", "backend": "vllm-cpu"}, "hf://Qwen/Qwen3-0.6B"),
    ({"model_path": "org/m-GGUF"}, "hf://org/m-GGUF"),                                  # llama.cpp's Q4_K_M pick
    ({"model_path": "org/m-GGUF:Q8_0"}, "hf://org/m-GGUF:Q8_0"),
    ({"model_path": "org/m", "hf_file": "m.Q4_K_M.gguf"}, "hf://org/m/m.Q4_K_M.gguf"),
    ({"model_path": "org/m", "hf_file": "q/m-00001-of-00002.gguf"}, "hf://org/m/q/m-00001-of-00002.gguf"),
])
def test_a_model_path_naming_a_hub_repo_is_an_implied_source(write, spec, text):
    """issue 23: the same Source as the hf:// form (one fetch, one pin), marked implied; model_path as written."""
    write("m.yaml", model_yaml("m", **spec))
    [decl] = load_paths([str(write.root)]).models
    src = decl.spec.source
    assert src == parse_source(text) and src.implied and decl.spec.source_implied
    assert decl.spec.model_path == spec["model_path"] and "source" not in decl.spec.model_fields_set
    assert src.shown().startswith(f"{text} (from model_path {spec['model_path']}")
    assert decl.spec.model_dump(exclude_unset=True).get("source") is None  # overrides re-validate without it


@pytest.mark.parametrize("path", ["/models/x.gguf", "models/x.gguf", "./hf-dir", "/srv/models/qwen", "qwen",
                                  "a/b/c", "org/x-GGUF.gguf"])
def test_a_local_model_path_stays_as_it_is(write, path):
    write("m.yaml", model_yaml("m", model_path=path))
    [decl] = load_paths([str(write.root)]).models
    assert decl.spec.source is None and decl.spec.model_path == path


def test_an_hf_file_the_hf_form_refuses_is_reported_on_hf_file(write):
    write("m.yaml", model_yaml("m", model_path="org/m", hf_file="m-00002-of-00003.gguf"))
    load = load_paths([str(write.root)])
    assert load.models == []
    assert [(p.field, p.message, p.hint) for p in load.problems] == [
        ("spec.hf_file", "names part 2 of a split GGUF",
         "name its first part m-00001-of-00003.gguf (the source is all 3 parts)")]


def test_implied_source_rules():
    assert implied_source("Qwen/Qwen3-0.6B", None, "llama") is None  # llama.cpp needs a GGUF (validation says so)
    assert implied_source("org/m-GGUF", None, "vllm") is None         # vLLM refuses GGUF repos (validation)
    assert implied_source("org/m:Q4_K_M", None, "llama") == parse_source("hf://org/m:Q4_K_M")
    assert implied_source("./org/m", None, "vllm") is None
