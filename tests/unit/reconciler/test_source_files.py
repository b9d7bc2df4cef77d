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


def test_after_a_pass_the_fetches_no_model_wants_are_cancelled_but_not_an_unreadable_manifests():
    """reconciler/downloads.Downloads.after_pass: what the daemon gives the fetch owner to keep."""
    from types import SimpleNamespace

    from xgen_declare.manifests.source import parse_source
    from xgen_declare.reconciler.downloads import Downloads

    class Fetcher:
        def __init__(self) -> None:
            self.kept: list[list[str]] = []

        def cancel_unwanted(self, wanted):
            self.kept.append(sorted(s.text for s in wanted))
            return []

        def get(self, source):
            return None

    d = Downloads(None, SimpleNamespace(procs={}), lambda why: None)
    d._fetcher = f = Fetcher()
    a, b, c = (parse_source(f"hf://o/{n}-GGUF:Q4_K_M") for n in "abc")
    d.after_pass({"a": a, "b": b}, {"a": a, "b": b, "c": c}, set())  # c is fetched already
    d.after_pass({}, {"c": c}, {"a"})   # a's manifest has a typo: its fetch goes on; b was removed
    d.after_pass({}, {"c": c}, {"a"})   # still: kept from one pass to the next
    d.after_pass({}, {"c": c}, None)    # a file cannot be parsed: any model may be in it
    d.after_pass({}, {"c": c}, set())   # a is gone
    A, B, C = (s.text for s in (a, b, c))
    assert f.kept == [[A, B, C], [A, C], [A, C], [A, C], [C]]
