"""`n_cpu_moe: N` end to end: the daemon renders `--n-cpu-moe N` (and `all` as `--cpu-moe`) for the real CPU
llama-server, which accepts it, loads a tiny random-weight MoE GGUF (tools/tinygguf, 4 experts per layer) and answers /health
and a completion. `auto` on a host without GPUs resolves to 0: no flag (nothing to keep off a GPU)."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil

from tests.e2e.test_cpu_backends import complete, manifest, write_config


def moe_manifest(name: str, model: Path, n_cpu_moe: int | str) -> str:
    return manifest(name, model, "llama-server-cpu") + f"  n_cpu_moe: {n_cpu_moe}\n"


def test_rendered_n_cpu_moe_starts_the_cpu_llama_server(tmp_path, llama_server_binary, daemon_factory):
    from xgen_declare.tools.tinygguf import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny-moe.gguf", n_expert=4)
    d = tmp_path / "manifests"
    d.mkdir()
    write_config(d, llama_server_binary, 18460)
    (d / "moe.yaml").write_text(moe_manifest("moe", model, 1))
    (d / "moe-auto.yaml").write_text(moe_manifest("moe-auto", model, "auto"))
    (d / "moe-all.yaml").write_text(moe_manifest("moe-all", model, "all"))
    daemon = daemon_factory(d)
    daemon.start()
    st = daemon.wait_ready(["moe", "moe-auto", "moe-all"], timeout=120)
    argv = psutil.Process(st["moe"]["pid"]).cmdline()
    assert argv[argv.index("--n-cpu-moe") + 1] == "1"
    assert "--n-cpu-moe" not in psutil.Process(st["moe-auto"]["pid"]).cmdline()
    every = psutil.Process(st["moe-all"]["pid"]).cmdline()
    assert "--cpu-moe" in every and "--n-cpu-moe" not in every
    for name in ("moe", "moe-auto", "moe-all"):
        base = st[name]["endpoint"].removesuffix("/v1")
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert complete(st["moe"]["endpoint"])["usage"]["completion_tokens"] >= 1
