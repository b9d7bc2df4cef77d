"""A HuggingFace repository of GGUF files goes to llama-server with llama.cpp's own download flags
(issue 12 item 7): the seed treats any model path containing "gguf" as llama.cpp's."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from tests.unit.desired.test_render import HELP, flags, inventory, render_dir
from xgen_declare.desired.selection import select_backend
from xgen_declare.config import Config, load_config
from xgen_declare.inventory.model import Backend, Inventory
from xgen_declare.manifests.load import load_paths
from xgen_declare.desired.demands import place
from xgen_declare.desired.resolve import resolve
from xgen_declare.backends.modelpath import gguf_repo
from xgen_declare.backends.profile import engine_of
from xgen_declare.manifests.request import ModelLoadRequest

REPO_ID = "TheBloke/Llama-2-7B-GGUF"


def problems_of(write, text: str) -> list[str]:
    write("m.yaml", text)
    return [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems]


@pytest.mark.parametrize("path", [REPO_ID, "bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "org/model:q8_0",
                                  "unsloth/phi-4-gguf"])
def test_gguf_repositories_are_llama_models(path):
    assert engine_of(path, "auto") == "llama"


@pytest.mark.parametrize("path", ["meta-llama/Llama-3.3-70B-Instruct", "/models/gguf/qwen-hf-dir",
                                  "./gguf-dir", "a/b/c-GGUF", "org/model:"])
def test_other_paths_are_not_gguf_repositories(path):
    assert engine_of(path, "auto") == "vllm"


@pytest.mark.parametrize("path", ["models/x.gguf", "org/x-GGUF.gguf", "/m/org/x.gguf"])
def test_gguf_files_are_never_repositories(path):
    assert gguf_repo(path) is None and gguf_repo(path, "a.gguf") is None


@pytest.mark.parametrize("dialect", ["new", "old"])
def test_repo_renders_hf_repo_and_no_model_flag(write, dialect):
    write("a.yaml", model_yaml("a", model_path=REPO_ID))
    write("b.yaml", model_yaml("b", model_path="bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"))
    write("c.yaml", model_yaml("c", model_path=REPO_ID, hf_file="llama-2-7b.Q4_K_M.gguf"))
    d = render_dir([write.root], inventory(dialect))
    assert d.problems == {}
    a, b, c = (d.rendered[n] for n in "abc")
    assert a.backend == "llama-server-vulkan" and "--model" not in a.argv
    assert flags(a.argv)["--hf-repo"] == REPO_ID and "--hf-file" not in a.argv
    assert flags(b.argv)["--hf-repo"] == "bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
    assert flags(c.argv)["--hf-repo"] == REPO_ID and flags(c.argv)["--hf-file"] == "llama-2-7b.Q4_K_M.gguf"
    assert "LLAMA_CACHE" not in a.env  # not configured: llama.cpp's own default
    assert "GGUF repository" in a.backend_reason


def test_download_flags_exist_in_both_captured_help_texts():
    for dialect in ("new", "old"):
        text = (HELP / f"{dialect}.txt").read_text()
        assert "--hf-repo" in text and "--hf-file" in text and "LLAMA_ARG_HF_REPO" in text


def test_cache_dir_from_the_config_becomes_llama_cache_for_repositories_only(write):
    write("a.yaml", model_yaml("a", model_path=REPO_ID))
    write("b.yaml", model_yaml("b"))
    cfg_file = write.root / "xgen-declare.yaml"
    cfg_file.write_text("llama_cache_dir: ../gguf-cache\n")
    config = load_config(None, [str(write.root)])
    d = render_dir([write.root], config=config)
    assert d.rendered["a"].env["LLAMA_CACHE"] == str(write.root.parent / "gguf-cache")
    assert "LLAMA_CACHE" not in d.rendered["b"].env  # a local file: nothing to download, no restart on change


def test_manifest_env_overrides_the_cache_dir(write):
    write("a.yaml", model_yaml("a", model_path=REPO_ID, env={"LLAMA_CACHE": "/srv/mine"}))
    d = render_dir([write.root], config=Config(llama_cache_dir="/srv/shared"))
    assert d.rendered["a"].env["LLAMA_CACHE"] == "/srv/mine"


def test_selection_offers_llama_cpp_python_for_repositories():
    """The store fetches the repository (issue 23): llama-cpp-python serves the local file like any GGUF."""
    inv = Inventory(backends=[Backend(name="llama-cpp-python", available=True)])
    sel = select_backend(ModelLoadRequest(model_path=REPO_ID), inv)
    assert sel.backend == "llama-cpp-python"
    assert sel.reason == "auto: llama-cpp-python is the first available backend for a GGUF repository (fetched " \
        "into the store)"
    none = select_backend(ModelLoadRequest(model_path=REPO_ID), Inventory(backends=[]))
    assert none.unavailable.startswith("no backend available for a GGUF repository (fetched into the store): ")


@pytest.mark.parametrize("spec", [{"model_path": REPO_ID}, {"model_path": REPO_ID + ":Q4_K_M"},
                                  {"model_path": REPO_ID, "hf_file": "llama-2-7b.Q4_K_M.gguf"},
                                  {"model_path": None, "source": "hf://TheBloke/Llama-2-7B-GGUF@main/llama-2-7b.Q4_K_M.gguf"},
                                  {"model_path": None, "source": "hf://TheBloke/Llama-2-7B-GGUF:Q4_K_M"}])
def test_explicit_llama_cpp_python_with_a_hub_gguf_is_a_store_source(write, spec):
    assert problems_of(write, model_yaml(backend="llama-cpp-python", **spec)) == []
    [decl] = load_paths([str(write.root)]).models
    assert decl.spec.source is not None and decl.spec.source.kind == "hf"
    assert decl.spec.source.implied == ("source" not in spec)


def test_llama_cpp_python_is_rendered_on_the_fetched_file(write, tmp_path):
    from xgen_declare.desired.build import build_desired

    local = tmp_path / "store" / "snapshots" / ("c" * 40) / "llama-2-7b.Q4_K_M.gguf"
    write("a.yaml", model_yaml("a", model_path=REPO_ID + ":Q4_K_M", backend="llama-cpp-python"))
    write("b.yaml", model_yaml("b", model_path=None, source="hf://TheBloke/Llama-2-7B-GGUF:Q4_K_M",
                               backend="llama-cpp-python"))
    d = build_desired([str(write.root)], Config(), inventory("new"), preview=True, placement=False,
                      local_path=lambda decl: str(local))
    assert d.problems == {}
    for name in "ab":
        argv = d.rendered[name].argv
        assert flags(argv)["--model"] == str(local) and "--hf-repo" not in argv
        assert d.rendered[name].warnings == []


def test_a_preview_of_llama_cpp_python_on_a_repository_says_the_store_fetches_it(write):
    write("a.yaml", model_yaml("a", model_path=REPO_ID + ":Q4_K_M", backend="llama-cpp-python"))
    d = render_dir([write.root])
    a = d.rendered["a"]
    assert flags(a.argv)["--model"] == REPO_ID + ":Q4_K_M" and "--hf-repo" not in a.argv
    assert a.warnings == [f"{REPO_ID}:Q4_K_M is a HuggingFace repository: the daemon fetches it into the store "
                          "first and starts llama-cpp-python with --model on the fetched file (this preview shows "
                          "the repository)"]


def test_vllm_backend_with_a_gguf_repository_is_refused(write):
    assert problems_of(write, model_yaml(model_path=REPO_ID, backend="vllm-cuda")) == [
        "7: spec.backend: vllm-cuda cannot serve a GGUF repository (use a llama-server backend or backend: auto)"]


@pytest.mark.parametrize("hf_file, message", [
    ("../x.gguf", "must be a .gguf file inside the repository (no leading '/' or '-', no '..')"),
    ("-x.gguf", "must be a .gguf file inside the repository (no leading '/' or '-', no '..')"),
    ("/abs/x.gguf", "must be a .gguf file inside the repository (no leading '/' or '-', no '..')"),
    ("model.bin", "must be a .gguf file inside the repository (no leading '/' or '-', no '..')"),
])
def test_hf_file_must_be_a_gguf_in_the_repository(write, hf_file, message):
    assert problems_of(write, model_yaml(model_path=REPO_ID, hf_file=hf_file)) == [f"7: spec.hf_file: {message}"]


def test_hf_file_rules(write):
    assert problems_of(write, model_yaml(model_path=REPO_ID + ":Q4_K_M", hf_file="a.gguf")) == [
        "7: spec.hf_file: llama.cpp's --hf-file overrides the :Q4_K_M tag of model_path (give one of them)"]
    assert problems_of(write, model_yaml(model_path="/m/x.gguf", hf_file="a.gguf")) == [
        "7: spec.hf_file: only applies when model_path is a HuggingFace repository of GGUF files (org/name-GGUF "
        "or org/name:QUANT) (remove it)"]
    # a repository not named *gguf*: hf_file says it holds GGUF files
    assert problems_of(write, model_yaml(model_path="org/model", hf_file="sub/model-q4.gguf")) == []
    assert engine_of("org/model", "auto", "sub/model-q4.gguf") == "llama"


def test_user_template_without_hf_repo_is_an_error_not_a_wrong_command(tmp_path, write):
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "llama-server.j2").write_text('{{ binary }} {{ "--model" }} {{ spec.model_path }}\n')
    write("a.yaml", model_yaml("a", model_path=REPO_ID))
    d = render_dir([write.root], config=Config(templates_dir=str(tdir)))
    assert "a" not in d.rendered
    assert d.problems["a"][0].message == (
        f"template llama-server.j2 does not pass the repository on (no --hf-repo in its output); {REPO_ID} is "
        "downloaded by llama-server, see the shipped template")


def test_placement_says_the_size_is_unknown_until_fetched_into_the_store(write):
    write("a.yaml", model_yaml("a", model_path=REPO_ID, n_gpu_layers="auto"))
    decls = load_paths([str(write.root)]).models
    ledger = place([resolve(d, inventory("new")) for d in decls], inventory("new"), 1024)
    assert ledger.warnings["a"] == (f"{REPO_ID} is a HuggingFace repository: its size is unknown until "
                                    "it is fetched into the store; placement unknown, n_gpu_layers: auto is left to "
                                    "llama-server's --fit")


def test_cli_validate_and_render(cli, write):
    write("a.yaml", model_yaml("a", model_path=REPO_ID))
    assert cli("validate", str(write.root)).code == 0
    r = cli("render", str(write.root), "--inventory", str(write.root.parent / "inv.yaml"))
    # an inventory for another host with llama-server-cuda only
    (write.root.parent / "inv.yaml").write_text(
        "apiVersion: xgen/v1\nkind: Inventory\ngpus: [{index: 0, vendor: nvidia, type: nvidia}]\n"
        "backends: [{name: llama-server-cuda, available: true, binary: /opt/llama-server, dialect: old}]\n")
    r = cli("render", str(write.root), "--inventory", str(write.root.parent / "inv.yaml"), "-o", "json")
    assert r.code == 0, r.err
    [m] = r.json()
    assert m["backend"] == "llama-server-cuda" and m["argv"][:3] == ["/opt/llama-server", "--hf-repo", REPO_ID]


def test_api_load_body_of_a_repository_names_it_and_validates():
    from xgen_declare.api.declare import manifest_text, parse_load_body, validate_text
    from xgen_declare.config import Api
    from xgen_declare.http.security import ApiProblem

    with pytest.raises(ApiProblem) as refused:  # the store would fetch it: api.allowed_sources decides (issue 23)
        parse_load_body({"model_path": REPO_ID + ":Q4_K_M"}, Api())
    assert refused.value.status == 403 and refused.value.extra["errors"][0]["field"] == "spec.model_path"
    name, spec = parse_load_body({"model_path": REPO_ID + ":Q4_K_M", "n_gpu_layers": 99},
                                 Api(allowed_sources=["hf://TheBloke/*"]))
    assert name == "llama-2-7b-gguf-q4-k-m" and spec["model_path"] == REPO_ID + ":Q4_K_M"  # not made relative
    assert validate_text(manifest_text(name, spec), "api/x.yaml") == []
    bad = validate_text(manifest_text("v", {"model_path": REPO_ID, "backend": "vllm-cuda"}), "api/v.yaml")
    assert [p.message for p in bad] == ["vllm-cuda cannot serve a GGUF repository"]
