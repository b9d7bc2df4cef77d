"""reconciler/apply.SourceFiles: each model's hub or URL source asked of the fetch owner with its token, the
sources of the pass (what stays fetched) and the models still waiting (issue 23)."""

from __future__ import annotations

from xgen_declare.manifests.load import load_paths
from xgen_declare.reconciler.apply import SourceFiles
from xgen_declare.reconciler.fetching import FETCHING, Download

from tests.unit.desired.test_local_path import manifest


def test_the_daemon_asks_for_a_model_path_hub_repo_with_its_env_hf_token(tmp_path):
    class Fetches:
        asked: list = []

        def want(self, source, token=None):
            self.asked.append((source.text, token))
            return Download(source.text, FETCHING)

    (tmp_path / "p.yaml").write_text(manifest("p", "x", "vllm-cpu").replace(
        'source: "x"', "model_path: org/private\n  env: {HF_TOKEN: hf_secret}"))
    (tmp_path / "q.yaml").write_text(manifest("q", "hf://org/q", "vllm-cpu") + "  env: {HF_TOKEN: not-for-source}\n")
    files = SourceFiles(Fetches())
    for decl in load_paths([str(tmp_path)]).models:
        assert files.local_path(decl) is None
    assert Fetches.asked == [("hf://org/private", "hf_secret"), ("hf://org/q", None)]  # a source: its token_file
    assert set(files.waiting) == {"p", "q"} and set(files.asked) == {"p", "q"}
