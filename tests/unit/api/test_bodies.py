"""Request bodies: strict JSON (no NaN/Infinity, no duplicate keys, bounded nesting) for every write
endpoint, and a written manifest that declares exactly the requested values."""

from __future__ import annotations

import logging

import pytest

from xgen_declare.manifests.load import load_paths

P = "/api/management"
OFF = {"model_path": "/models/Qwen3-8B.Q4_K_M.gguf", "backend": "llama-server-cpu", "enabled": False, "name": "m"}
PREFIX = b'{"name": "m", "model_path": "/m/x.gguf", "enabled": false, '


def test_deep_nesting_is_400_without_a_traceback(api, caplog):
    caplog.set_level(logging.ERROR)
    for path in ("/load", "/unload"):
        r = api.client.post(P + path, content=b"[" * 3000 + b"]" * 3000)
        assert r.status_code == 400, r.text
        assert r.json() == {"status": "error", "detail": "the body nests deeper than 32 levels; a model manifest "
                            "needs far fewer"}
    # deep enough to parse, too deep to be a manifest: refused before it is written as YAML
    r = api.client.post(P + "/load", content=PREFIX + b'"alias": ' + b"[" * 900 + b"]" * 900 + b"}")
    assert r.status_code == 400, r.text
    assert "RecursionError" not in caplog.text and "Traceback" not in caplog.text
    assert not (api.manifests / "api").exists()


@pytest.mark.parametrize("field, raw, token, where", [
    ("stop_grace", b"Infinity", "Infinity", "stop_grace"), ("stop_grace", b"-Infinity", "-Infinity", "stop_grace"),
    ("ready_timeout", b"NaN", "NaN", "ready_timeout"), ("tensor_split", b"[1, NaN]", "NaN", "tensor_split[1]"),
    ("gpu_memory_utilization", b"1e999", "1e999", "gpu_memory_utilization"),
])
def test_non_finite_numbers_are_422(api, field, raw, token, where):
    r = api.client.post(P + "/load", content=PREFIX + b'"' + field.encode() + b'": ' + raw + b"}")
    assert r.status_code == 422, r.text
    assert r.json() == {"status": "error", "detail": "the body is not valid JSON", "errors": [
        {"field": where, "message": f"{token} is not a finite number",
         "hint": "send a finite number (JSON has no NaN or Infinity)"}]}
    assert not (api.manifests / "api").exists()


def test_duplicate_keys_are_422(api):
    r = api.client.post(P + "/load", content=PREFIX + b'"ctx_size": 1024, "ctx_size": 2048}')
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "ctx_size", "message": "duplicate key 'ctx_size'",
                                   "hint": "give each key once"}]
    r = api.client.post(P + "/load", content=b'{"name": "m", "model_path": "/m/x.gguf", "rpc_workers": '
                        b'[{"host": "127.0.0.1", "port": 1, "port": 2}]}')
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "rpc_workers[0].port",
                                                            "message": "duplicate key 'port'",
                                                            "hint": "give each key once"}]
    r = api.client.post(P + "/unload", content=b'{"name": "a", "name": "b"}')
    assert r.status_code == 422 and r.json()["errors"][0]["message"] == "duplicate key 'name'"
    assert not (api.manifests / "api").exists()


# C0 (but tab), DEL and C1 ("\x85", "\x1bq") are refused since #21 finding 17 (the test below)
@pytest.mark.parametrize("value", ["x\u2028y", "p\u2029", "\ufeffz", "tab\tx", "é ü"])
def test_the_written_manifest_declares_exactly_the_requested_strings(api, value):
    r = api.client.post(P + "/load?wait=5", json={**OFF, "alias": [value], "model_path": f"/models/{value}.gguf"})
    assert r.status_code == 200, r.text
    load = load_paths([str(api.manifests)])
    (decl,) = load.models
    assert decl.spec.alias == [value] and decl.spec.model_path == f"/models/{value}.gguf"


@pytest.mark.parametrize("value, shown", [("\x1b]0;pwned\x07", "\\x1b at position 0"), ("a\x85b", "\\x85 at position 1"),
                                          ("\x1bq", "\\x1b at position 0")])
def test_an_alias_with_terminal_escapes_is_422_naming_the_field(api, value, shown):
    """#21 finding 17: control characters never reach argv through the API either."""
    body = {"name": "m", "model_path": "/models/x.gguf", "backend": "llama-server-cpu", "enabled": False,
            "alias": [value]}
    r = api.client.post("/api/management/load?wait=1", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "spec.alias", "hint": "", "message": (
        f"each item must not contain control characters ({shown}): remove it (newlines, NUL bytes and "
        "terminal escapes are refused, a tab is allowed)")}]
    assert not (api.manifests / "api" / "m.yaml").exists()
