"""What a caller of the API may not declare unless the config allows it: fields that run code of the
caller's choosing (`api.allow_exec_fields`) and addresses that put a server on the network
(`api.allow_network_bind`). Nothing is written when a request is refused."""

from __future__ import annotations

import pytest

P = "/api/management"
OFF = {"model_path": "/models/Qwen3-8B.Q4_K_M.gguf", "backend": "llama-server-cpu", "enabled": False, "name": "m"}
EXEC_HINT = "set api.allow_exec_fields: true in xgen-declare.yaml, or write a manifest file"
NET_HINT = "set api.allow_network_bind: true in xgen-declare.yaml, or write a manifest file"


def test_trust_remote_code_is_an_exec_field(api):
    r = api.client.post(P + "/load", json={**OFF, "model_path": "org/repo", "backend": "vllm-cpu",
                                           "trust_remote_code": True})
    assert r.status_code == 403, r.text
    assert r.json() == {
        "status": "error", "detail": "these fields run code of the caller's choosing and are refused through the API",
        "errors": [{"field": "spec.trust_remote_code", "message": "not allowed through the API", "hint": EXEC_HINT}]}
    assert not (api.manifests / "api").exists()
    # false (the default) declares nothing that runs code
    r = api.client.post(P + "/load?wait=5", json={**OFF, "trust_remote_code": False})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("extra, field", [
    ({"host": "0.0.0.0"}, "spec.host"),
    ({"host": "192.168.1.7"}, "spec.host"),
    ({"host": "::"}, "spec.host"),
    ({"rpc_workers": [{"host": "127.0.0.1", "port": 50052}, {"host": "127.0.0.1", "port": 50053,
                                                              "bind": "0.0.0.0"}]}, "spec.rpc_workers[1].bind"),
    ({"distributed": "ray", "nodes": 2, "ray": {"head": "h1", "workers": ["h2"]}}, "spec.distributed"),
])
def test_network_bind_refused_unless_allowed(api, extra, field):
    r = api.client.post(P + "/load", json={**OFF, **extra})
    assert r.status_code == 403, r.text
    assert r.json() == {
        "status": "error", "detail": "these fields make a server listen beyond this machine and are refused "
        "through the API", "errors": [{"field": field, "message": "not allowed through the API", "hint": NET_HINT}]}
    assert not (api.manifests / "api").exists()


def test_loopback_addresses_are_fine_and_the_switch_allows_the_rest(api):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        r = api.client.post(P + "/load?wait=5", json={**OFF, "host": host})
        assert r.status_code == 200, (host, r.text)
    r = api.client.post(P + "/load?wait=5", json={**OFF, "rpc_workers": [{"host": "127.0.0.1", "port": 50052,
                                                                          "bind": "127.0.0.1"}]})
    assert r.status_code == 200, r.text
    api.ctx.settings.allow_network_bind = True
    r = api.client.post(P + "/load?wait=5", json={**OFF, "host": "0.0.0.0"})
    assert r.status_code == 200, r.text
    assert "host: 0.0.0.0" in (api.manifests / "api" / "m.yaml").read_text()


def test_both_kinds_refused_together(api):
    r = api.client.post(P + "/load", json={**OFF, "host": "0.0.0.0", "binary": "/bin/sh"})
    assert r.status_code == 403
    assert r.json()["detail"] == ("these fields run code of the caller's choosing or make a server listen beyond "
                                  "this machine, and are refused through the API")
    assert [(e["field"], e["hint"]) for e in r.json()["errors"]] == [("spec.binary", EXEC_HINT),
                                                                     ("spec.host", NET_HINT)]


SOURCE_HINT = ("add a pattern that matches it to api.allowed_sources in xgen-declare.yaml (e.g. hf://ORG/*), or "
               "write a manifest file")


def test_a_hub_or_url_source_needs_api_allowed_sources(api):
    spec = {k: v for k, v in OFF.items() if k != "model_path"}
    r = api.client.post(P + "/load", json={**spec, "source": "hf://evil/huge-GGUF:Q8_0"})
    assert r.status_code == 403, r.text
    assert r.json() == {
        "status": "error", "detail": "this source is not in api.allowed_sources and is refused through the API",
        "errors": [{"field": "spec.source", "message": "hf://evil/huge-GGUF:Q8_0 is not allowed through the API",
                    "hint": SOURCE_HINT}]}
    assert not (api.manifests / "api").exists()
    api.ctx.settings.allowed_sources = ["hf://Qwen/*"]
    assert api.client.post(P + "/load", json={**spec, "source": "hf://evil/huge-GGUF:Q8_0"}).status_code == 403
    r = api.client.post(P + "/load?wait=5", json={**spec, "source": "hf://Qwen/Qwen3-0.6B-GGUF:Q8_0"})
    assert r.status_code == 200, r.text
    assert "source: hf://Qwen/Qwen3-0.6B-GGUF:Q8_0" in (api.manifests / "api" / "m.yaml").read_text()
    r = api.client.post(P + "/load", json={**spec, "name": "t", "source": {
        "url": "hf://Qwen/Qwen3-0.6B-GGUF:Q8_0", "token_file": "/etc/shadow"}})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "spec.source.token_file", r.text


def test_a_local_source_needs_no_pattern(api):
    spec = {k: v for k, v in OFF.items() if k != "model_path"}
    r = api.client.post(P + "/load?wait=5", json={**spec, "source": "/models/Qwen3-8B.Q4_K_M.gguf"})
    assert r.status_code == 200, r.text


def test_a_model_path_naming_a_hub_repository_needs_api_allowed_sources_too(api):
    """issue 23: the store fetches a hub id in model_path as it fetches `source: hf://...`, so a token holder
    cannot fill the disk by writing the repository as model_path instead of source."""
    spec = {k: v for k, v in OFF.items() if k != "model_path"}
    cases = [({"model_path": "evil/huge-GGUF:Q8_0"}, "evil/huge-GGUF:Q8_0", "hf://evil/huge-GGUF:Q8_0"),
             ({"model_path": "evil/huge-GGUF"}, "evil/huge-GGUF", "hf://evil/huge-GGUF"),
             ({"model_path": "evil/huge", "hf_file": "huge.Q8_0.gguf", "backend": "llama-server-cpu"}, "evil/huge",
              "hf://evil/huge/huge.Q8_0.gguf"),
             ({"model_path": "evil/huge", "backend": "vllm-cpu"}, "evil/huge", "hf://evil/huge"),
             ({"model_path": "evil/huge", "backend": "auto"}, "evil/huge", "hf://evil/huge")]  # auto: a vLLM id
    for body, path, source in cases:
        r = api.client.post(P + "/load", json={**spec, **body})
        assert r.status_code == 403, (body, r.text)
        assert r.json()["errors"] == [{
            "field": "spec.model_path", "hint": SOURCE_HINT,
            "message": f"{path} (a hub repository, fetched into the store as {source}) is not allowed through the API"}]
    assert not (api.manifests / "api").exists()
    api.ctx.settings.allowed_sources = ["hf://Qwen/*"]
    assert api.client.post(P + "/load", json={**spec, "model_path": "evil/huge-GGUF:Q8_0"}).status_code == 403
    r = api.client.post(P + "/load?wait=0", json={**spec, "model_path": "Qwen/Qwen3-0.6B-GGUF:Q8_0"})
    assert r.status_code == 200, r.text
    assert "model_path: Qwen/Qwen3-0.6B-GGUF:Q8_0" in (api.manifests / "api" / "m.yaml").read_text()
    for i, (local, backend) in enumerate((("/models/x.gguf", "llama-server-cpu"), ("./x.gguf", "llama-server-cpu"),
                                          ("./hf-dir", "vllm-cpu"), ("/srv/qwen", "vllm-cpu"))):  # local paths: no pattern needed, as before
        r = api.client.post(P + "/load?wait=0", json={**spec, "name": f"l{i}", "model_path": local, "backend": backend})
        assert r.status_code == 200, (local, r.text)
