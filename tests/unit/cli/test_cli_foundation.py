"""CLI: validate / render / schema, global options before or after the verb, no tracebacks."""

from __future__ import annotations

import json

from tests.conftest import REPO, model_yaml

EXAMPLES = str(REPO / "manifests" / "examples")


def test_validate_ok_and_exit_codes(cli, write):
    write("a.yaml", model_yaml("a"))
    r = cli("validate", str(write.root))
    assert r.code == 0 and r.out.strip() == "ok: 1 model(s) in 1 file(s)"
    write("b.yaml", model_yaml("b", n_gpu_layer=1))
    r = cli("validate", str(write.root))
    assert r.code == 1
    assert r.err.splitlines()[0] == f"{write.root}/b.yaml:6: spec.n_gpu_layer: unknown field `n_gpu_layer` " \
                                    "(did you mean `n_gpu_layers`?)"


def test_validate_json(cli, write):
    write("b.yaml", model_yaml("b", split_mode="x"))
    r = cli("validate", str(write.root), "-o", "json")
    assert r.code == 1
    [p] = r.json()
    assert {k: p[k] for k in ("line", "field")} == {"line": 6, "field": "spec.split_mode"}
    assert set(p) >= {"file", "line", "field", "message", "hint"}


def test_validate_repo_manifests(cli):
    r = cli("validate", str(REPO / "manifests"))
    assert r.code == 0, r.err


def test_validate_does_not_check_host_without_inventory(cli, write):
    write("a.yaml", model_yaml("a", backend="llama-server-rocm", gpus=[7]))
    assert cli("validate", str(write.root)).code == 0


def test_validate_with_inventory_checks_host(cli, write, tmp_path):
    inv = tmp_path / "host.yaml"
    inv.write_text("apiVersion: xgen/v1\nkind: Inventory\ngpus: []\nbackends:\n"
                   "  - {name: llama-server-rocm, available: false, reason: no AMD GPU}\n")
    write("a.yaml", model_yaml("a", backend="llama-server-rocm", gpus=[7]))
    r = cli("validate", str(write.root), "--inventory", str(inv), "-o", "json")
    assert r.code == 1
    assert [(p["field"], p["message"]) for p in r.json()] == [
        ("spec.backend", "backend llama-server-rocm is not available on this host: no AMD GPU"),
        ("spec.gpus[0]", "GPU 7 does not exist on this host (GPUs: none)")]


def test_bad_inventory_file_is_reported(cli, write, tmp_path):
    inv = tmp_path / "host.yaml"
    inv.write_text("gpus: [{index: zero}]\n")
    write("a.yaml", model_yaml("a"))
    r = cli("render", str(write.root), "--inventory", str(inv))
    assert r.code == 1
    assert f"{inv}:1: gpus[0].index: Input should be a valid integer" in r.err


def test_render_shell_shows_seed_commands(cli):
    r = cli("render", EXAMPLES, "-o", "shell", "--inventory", str(REPO / "tests" / "fixtures" / "all-backends.yaml"))
    assert r.code == 0, r.err
    assert "llama-server-vulkan \\\n  --model /app/models/Qwen3-8B.Q4_K_M.gguf" in r.out
    assert "--tensor-split 3.0,1.0" in r.out and "--split-mode layer" in r.out
    assert "vllm serve meta-llama/Llama-3.3-70B-Instruct" in r.out and "--trust-remote-code" in r.out


def test_render_json_objects(cli, write):
    write("a.yaml", model_yaml("a", backend="llama-server-cpu", port=8015))
    r = cli("render", str(write.root), "-o", "json")
    assert r.code == 0, r.err
    [m] = r.json()
    assert {k: m[k] for k in ("name", "backend", "port", "endpoint")} == \
        {"name": "a", "backend": "llama-server-cpu", "port": 8015, "endpoint": "http://127.0.0.1:8015/v1"}
    assert isinstance(m["argv"], list) and isinstance(m["env"], dict)


def test_render_reports_unrenderable_model_and_keeps_others(cli, write, tmp_path):
    inv = tmp_path / "host.yaml"
    inv.write_text("apiVersion: xgen/v1\nkind: Inventory\nbackends: []\n")
    write("a.yaml", model_yaml("a"))  # auto, nothing available
    write("b.yaml", model_yaml("b", backend="llama-server-cpu"))
    r = cli("render", str(write.root), "--inventory", str(inv), "-o", "json")
    assert r.code == 1
    assert [m["name"] for m in r.json()] == ["b"]
    assert "spec.backend: no backend available for a GGUF file" in r.err


def test_global_options_before_or_after_verb(cli, write, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("ports: {start: 9100, end: 9101}\n")
    write("a.yaml", model_yaml("a", backend="llama-server-cpu"))
    before = cli("--config", str(cfg), "render", str(write.root), "-o", "json").json()
    after = cli("render", str(write.root), "-o", "json", "--config", str(cfg)).json()
    assert before[0]["port"] == after[0]["port"] == 9100


def test_config_in_manifests_dir_is_used_and_validated(cli, write):
    write("xgen-declare.yaml", "ports: {start: 9200, end: 9100}\nbinaries: {llama-server-gpu: /x}\nstate_dri: /tmp\n")
    write("a.yaml", model_yaml("a"))
    r = cli("render", str(write.root))
    assert r.code == 1
    lines = r.err.splitlines()
    assert any(":1: ports: end (9100) is below start (9200) (make end >= start)" in l for l in lines)
    assert any(":3: state_dri: unknown field `state_dri` (did you mean `state_dir`?)" in l for l in lines)
    r = cli("validate", str(write.root))
    assert r.code == 1 and "xgen-declare.yaml" in r.err


def test_schema_is_json_schema_of_manifest(cli):
    r = cli("schema")
    schema = json.loads(r.out)
    assert r.code == 0 and schema["title"] == "xgen-declare Model manifest"
    spec = schema["$defs"]["ModelLoadRequest"]["properties"]
    for f in ("model_path", "backend", "n_gpu_layers", "main_gpu", "split_mode", "tensor_split", "gpus",
              "tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization", "max_model_len",
              "ctx_size", "api_key_file", "extra_args", "ready_timeout", "stop_grace"):
        assert f in spec


def test_version_and_help(cli):
    r = cli("--version")
    assert r.code == 0 and "xgen-declare" in r.out
    r = cli("render", "--help")
    assert r.code == 0 and "--inventory" in r.out and "--state-dir" in r.out


def test_missing_path_and_usage_errors_have_no_traceback(cli):
    r = cli("validate", "/nonexistent/dir")
    assert r.code == 1 and "/nonexistent/dir: no such file or directory (check the path)" in r.err
    r = cli("nosuchverb")
    assert r.code == 2 and "Traceback" not in r.err


def test_render_reports_problems_no_model_owns(cli, write):
    r = cli("render", "/nonexistent/dir")
    assert r.code == 1 and "/nonexistent/dir: no such file or directory (check the path)" in r.err
    write("bad.yaml", "a: [1\n")
    r = cli("render", str(write.root))
    assert r.code == 1 and "bad.yaml:2: YAML syntax error" in r.err
