"""A hub model in a Kubernetes export (export/hub.py): the pod downloads it itself, so vLLM gets the commit this
host pinned (`--revision C --tokenizer-revision C`), llama-server (no revision flag) gets --hf-repo with a
warning that the pod fetches main unpinned, and what a pod cannot fetch as written is not exported."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from tests.unit.export.conftest import load_stream, validate_strict
from xgen_declare.manifests.source import parse_source
from xgen_declare.reconciler.fetching import write_pin

C = "0123456789abcdef0123456789abcdef01234567"
ON_VOLUME = ("put the file on kubernetes.model_volume (`xgen-declare pull` fetches it into the store) and set "
             "model_path to it")


@pytest.fixture
def export(cli, k8s_dir, tmp_path):
    state = tmp_path / "state"

    def _export(*, pin: tuple[str, str] | None = None):
        if pin is not None:
            write_pin(state / "pins", parse_source(pin[0]), pin[1])
        r = cli("export", "kubernetes", k8s_dir(), "--state-dir", str(state))
        objs = {f"{o['kind']}/{o['metadata']['name']}": o for o in load_stream(r.out)}
        for o in objs.values():
            validate_strict(o)
        return r, objs

    return _export


def args_of(objs: dict, name: str) -> list[str]:
    [c] = objs[f"Deployment/{name}"]["spec"]["template"]["spec"]["containers"]
    return c["args"]


def src_yaml(name: str, source: str, backend: str, **spec) -> str:
    return model_yaml(name, model_path=None, source=source, backend=backend, **spec)


def test_vllm_gets_the_commit_pinned_in_the_state_dir(write, export):
    write("a.yaml", src_yaml("a", "hf://org/m@main", "vllm-cuda"))
    r, objs = export(pin=("hf://org/m@main", C))
    assert r.code == 0, r.err
    args = args_of(objs, "a")
    assert args[:2] == ["serve", "org/m"]
    assert args[-4:] == ["--revision", C, "--tokenizer-revision", C]
    assert "a:" not in r.err  # pinned: nothing to warn about


def test_vllm_with_a_commit_in_the_manifest_needs_no_pin(write, export):
    write("a.yaml", src_yaml("a", f"hf://org/m@{C}", "vllm-cuda"))
    r, objs = export()
    assert r.code == 0 and args_of(objs, "a")[-4:] == ["--revision", C, "--tokenizer-revision", C]


def test_vllm_unpinned_branch_is_rendered_as_written_with_a_warning(write, export):
    write("a.yaml", model_yaml("a", model_path="org/m", backend="vllm-cuda"))  # an implied source: main
    write("b.yaml", src_yaml("b", "hf://org/m@v2", "vllm-cuda"))
    r, objs = export()
    assert r.code == 0, r.err
    assert "--revision" not in args_of(objs, "a")
    assert args_of(objs, "b")[-4:] == ["--revision", "v2", "--tokenizer-revision", "v2"]
    d = str(write.root)
    assert f"a: {d}/a.yaml:6: warning: spec.model_path: hf://org/m is not pinned (no commit in the manifest, none pinned in " \
        "the state dir): the pod's vLLM downloads branch main as it is when the pod starts; pin it with @<commit> " \
        "in the source, or run `xgen-declare pull` first so that the export renders --revision <commit>" in r.err
    assert "b.yaml:7: warning: spec.source: hf://org/m@v2 is not pinned" in r.err and "downloads branch v2" in r.err


def test_a_manifests_own_revision_flag_is_left_alone(write, export):
    write("a.yaml", src_yaml("a", "hf://org/m", "vllm-cuda", extra_args=["--revision", "abc"]))
    r, objs = export(pin=("hf://org/m", C))
    assert r.code == 0 and args_of(objs, "a").count("--revision") == 1 and C not in args_of(objs, "a")


def test_llama_server_on_main_gets_hf_repo_and_says_the_pod_fetches_main_unpinned(write, export):
    write("a.yaml", src_yaml("a", "hf://org/m-GGUF:Q4_K_M", "llama-server-cuda"))
    r, objs = export(pin=("hf://org/m-GGUF:Q4_K_M", C))
    assert r.code == 0, r.err
    args = args_of(objs, "a")
    assert args[:2] == ["--hf-repo", "org/m-GGUF:Q4_K_M"] and "--revision" not in args
    assert (f"a: {write.root}/a.yaml:7: warning: spec.source: the pod's llama-server downloads org/m-GGUF itself from the "
            "unpinned branch main as it is when the pod starts (--hf-repo has no revision flag), which may differ "
            f"from commit {C[:12]} pinned here; to pin it, {ON_VOLUME}") in r.err.splitlines()


@pytest.mark.parametrize("source, rev", [(f"hf://org/m-GGUF@{C}/m.Q4_K_M.gguf", C), ("hf://org/m-GGUF@v1:Q4_K_M", "v1")])
def test_llama_server_cannot_honour_another_revision(write, export, source, rev):
    write("a.yaml", src_yaml("a", source, "llama-server-cuda"))
    r, objs = export()
    assert r.code == 1 and objs == {}
    assert f"a: not exported: {write.root}/a.yaml:7: spec.source: {source} names revision {rev}, and llama-server's " \
        "--hf-repo downloads the main branch only (llama-server has no revision flag): the pod would serve other " \
        f"weights ({ON_VOLUME})" in r.err.splitlines()


def test_llama_cpp_python_and_url_sources_are_not_exported(write, export):
    write("a.yaml", model_yaml("a", model_path="org/m-GGUF:Q4_K_M", backend="llama-cpp-python"))
    write("b.yaml", model_yaml("b", model_path=None, backend="llama-server-cuda",
                               source={"url": "https://example.org/x.gguf", "sha256": "a" * 64}))
    r, objs = export()
    assert r.code == 1 and objs == {}
    d = str(write.root)
    assert f"a: not exported: {d}/a.yaml:6: spec.model_path: hf://org/m-GGUF:Q4_K_M is fetched by the daemon's " \
        "store, and in a pod llama-cpp-python would have to download it itself, which it does not (export it " \
        f"with a llama-server backend, or {ON_VOLUME})" in r.err.splitlines()
    assert f"b: not exported: {d}/b.yaml:8: spec.source: https://example.org/x.gguf is fetched by the daemon's " \
        f"store, and a pod has none: the export renders no download for a URL source ({ON_VOLUME})" \
        in r.err.splitlines()
