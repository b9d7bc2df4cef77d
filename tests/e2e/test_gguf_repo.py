"""A model_path that is a HuggingFace repository of GGUF files, served by the real llama-server through its own
download flags (--hf-repo / --hf-file) from the cache dir the config names (LLAMA_CACHE). No network here:
the repository is put into that cache beforehand in llama.cpp's HuggingFace-cache layout and llama-server
runs with --offline, which reads only the cache (new builds: common/hf-cache.cpp get_cached_files)."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

from tests.e2e.test_cpu_backends import complete

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_cache(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """models--ORG--NAME/refs/main -> COMMIT, snapshots/COMMIT/<file> (what llama.cpp itself writes)."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    for name, src in files.items():
        dst = root / "snapshots" / COMMIT / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def test_repository_is_served_by_llama_server_from_the_configured_cache(tmp_path, tiny_models, llama_server_binary,
                                                                       daemon_factory):
    cache = tmp_path / "gguf-cache"
    fill_cache(cache, "xgen/tiny-GGUF", {"tiny-Q8_0.gguf": tiny_models["chat"],
                                         "tiny-F16.gguf": tiny_models["chat"]})
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "xgen-declare.yaml").write_text(textwrap.dedent(f"""\
        ports: {{start: 18470, end: 18479}}
        binaries: {{llama-server-cpu: {json.dumps(llama_server_binary)}}}
        python: {json.dumps(sys.executable)}
        llama_cache_dir: ../gguf-cache
        """))
    for name, extra in (("tagged", "model_path: xgen/tiny-GGUF:Q8_0"),
                        ("by-file", "model_path: xgen/tiny-GGUF\n  hf_file: tiny-F16.gguf")):
        (d / f"{name}.yaml").write_text(
            f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n  {extra}\n"
            "  backend: llama-server-cpu\n  ctx_size: 256\n  threads: 1\n  ready_timeout: 60\n  stop_grace: 5\n"
            "  extra_args: [--offline]\n")
    daemon = daemon_factory(d)
    r = daemon.cli("render", str(d), "-o", "json")
    assert r.returncode == 0, r.stderr
    rendered = {m["name"]: m for m in json.loads(r.stdout)}
    assert rendered["tagged"]["argv"][1:3] == ["--hf-repo", "xgen/tiny-GGUF:Q8_0"]
    assert rendered["by-file"]["argv"][1:5] == ["--hf-repo", "xgen/tiny-GGUF", "--hf-file", "tiny-F16.gguf"]
    assert rendered["tagged"]["env"]["LLAMA_CACHE"] == str(cache)
    daemon.start()
    st = daemon.wait_ready(["tagged", "by-file"], timeout=120)
    for name in ("tagged", "by-file"):
        assert complete(st[name]["endpoint"])["usage"]["completion_tokens"] >= 1
