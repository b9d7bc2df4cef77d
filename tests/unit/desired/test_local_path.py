"""A fetched source is rendered on its local files (issue 23): llama-server --model FILE (never --hf-repo),
vLLM the snapshot directory, still answering to ORG/REPO; a source not fetched renders as before."""

from __future__ import annotations

import json

from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired

from .test_render import flags, inventory

SNAP = "/store/models--org--m/snapshots/" + "a" * 40


def manifest(name: str, source: str, backend: str) -> str:
    return (f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  source: {json.dumps(source)}\n"
            f"  backend: {backend}\n")


def build(tmp_path, local):
    (tmp_path / "g.yaml").write_text(manifest("g", "hf://org/m-GGUF:Q4_K_M", "llama-server-cpu"))
    (tmp_path / "v.yaml").write_text(manifest("v", "hf://org/m@v1", "vllm-cpu"))
    return build_desired([str(tmp_path)], Config(), inventory("new"), preview=True, local_path=local)


def test_a_fetched_source_runs_on_its_local_files(tmp_path):
    paths = {"g": f"{SNAP}/m.Q4_K_M.gguf", "v": SNAP}
    d = build(tmp_path, lambda decl: paths[decl.name])
    g, v = flags(d.rendered["g"].argv), d.rendered["v"].argv
    assert g["--model"] == f"{SNAP}/m.Q4_K_M.gguf" and "--hf-repo" not in g and "--hf-file" not in g
    assert SNAP in v and "org/m" in flags(v)["--served-model-name"].split()


def test_a_source_not_fetched_renders_as_its_model_path_equivalent(tmp_path):
    d = build(tmp_path, lambda decl: None)
    assert flags(d.rendered["g"].argv)["--hf-repo"] == "org/m-GGUF:Q4_K_M"
    assert "org/m" in d.rendered["v"].argv and SNAP not in d.rendered["v"].argv


def test_a_model_path_hub_id_runs_on_its_local_files_under_the_same_names(tmp_path):
    """issue 23: model_path: ORG/REPO (vLLM) and ORG/REPO-GGUF:QUANT are implied sources: fetched, they run on
    the store's files; vLLM's --served-model-name still lists ORG/REPO (clients keep their model name)."""
    (tmp_path / "g.yaml").write_text(manifest("g", "x", "llama-server-cpu").replace('source: "x"',
                                                                                   "model_path: org/m-GGUF:Q4_K_M"))
    (tmp_path / "v.yaml").write_text(manifest("v", "x", "vllm-cpu").replace('source: "x"', "model_path: org/m"))
    paths = {"g": f"{SNAP}/m.Q4_K_M.gguf", "v": SNAP}
    asked = {}

    def local(decl):
        asked[decl.name] = decl.spec.source.text
        return paths[decl.name]

    before = build_desired([str(tmp_path)], Config(), inventory("new"), preview=True)
    d = build_desired([str(tmp_path)], Config(), inventory("new"), preview=True, local_path=local)
    assert asked == {"g": "hf://org/m-GGUF:Q4_K_M", "v": "hf://org/m"}
    g, v = flags(d.rendered["g"].argv), d.rendered["v"].argv
    assert g["--model"] == f"{SNAP}/m.Q4_K_M.gguf" and "--hf-repo" not in g
    assert v[1:3] == ["serve", SNAP]
    assert flags(v)["--served-model-name"] == flags(before.rendered["v"].argv)["--served-model-name"] == "v org/m"

