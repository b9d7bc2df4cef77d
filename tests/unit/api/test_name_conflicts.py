"""Finding 7 (#21): the API refuses (409) a load whose alias, name or vLLM model id another manifest
serves; the conflicts between manifests show in `plan` (CLI and GET /plan), the daemon's log and
/v1/models. Nothing is spawned (no backend binary)."""

from __future__ import annotations

import logging

from tests.conftest import model_yaml

P = "/api/management"
CPU = {"model_path": "/models/x.gguf", "backend": "llama-server-cpu", "enabled": False}
HF = "meta-llama/Llama-3.3-70B-Instruct"
SHARED = "names: alias 'shared' is claimed by alpha and beta: alpha answers"


def test_load_refuses_an_alias_a_hand_written_manifest_serves(api):
    api.hand("zeta.yaml", "zeta", alias=["chat"], backend="llama-server-cpu", enabled=False)
    r = api.client.post(P + "/load?wait=0", json={**CPU, "name": "aaa", "alias": ["chat"]})
    assert r.status_code == 409, r.text
    assert r.json() == {
        "status": "error", "model": "aaa", "file": "zeta.yaml",
        "detail": "alias 'chat' of aaa is already served by zeta (zeta.yaml): choose another alias, or edit "
                  "zeta.yaml (files are the source of truth; nothing was written)",
        "conflict": {"what": "alias", "name": "chat", "model": "zeta"}}
    assert not (api.manifests / "api" / "aaa.yaml").exists()
    r = api.client.post(P + "/load?wait=0", json={**CPU, "name": "chat"})  # a name another model's alias is
    assert r.status_code == 409 and r.json()["conflict"] == {"what": "name", "name": "chat", "model": "zeta"}
    r = api.client.post(P + "/load?wait=0", json={**CPU, "name": "aaa", "alias": ["talk"]})  # its own names: fine
    assert r.status_code == 200, r.text


def test_load_refuses_a_vllm_model_id_a_hand_written_manifest_serves(api):
    api.hand("llama.yaml", "llama", model_path=HF, backend="vllm-cpu", enabled=False)
    api.ctx.settings.allowed_sources = ["hf://meta-llama/*"]  # a hub id is a source through the API (issue 23)
    r = api.client.post(P + "/load?wait=0", json={"name": "copy", "model_path": HF, "backend": "vllm-cpu",
                                                  "enabled": False})
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == (
        f"model id '{HF}' of copy is already served by llama (llama.yaml): send its requests to llama (it serves "
        "that model already), or give this one another model_path, or edit llama.yaml (files are the source of "
        "truth; nothing was written)")
    assert not (api.manifests / "api" / "copy.yaml").exists()


def test_conflicts_show_in_plan_the_log_and_v1_models(api, caplog):
    caplog.set_level(logging.WARNING, "xgen_declare")
    api.hand("alpha.yaml", "alpha", alias=["shared"], backend="llama-server-cpu", enabled=False)
    api.hand("beta.yaml", "beta", alias=["shared"], backend="llama-server-cpu", enabled=False)
    assert api.client.post(P + "/reconcile").json()["notes"] == [SHARED]
    assert SHARED in caplog.text  # the daemon's log (the plan logger: once, and again when it changes)
    assert api.client.get(P + "/plan").json()["notes"] == [SHARED]
    body = api.client.get("/v1/models").json()
    assert body["conflicts"] == ["alias 'shared' is claimed by alpha and beta: alpha answers"]
    assert [m["id"] for m in body["data"]] == ["alpha", "beta"]


def test_plan_cli_notes_the_conflict(cli, write, tmp_path):
    write("alpha.yaml", model_yaml("alpha", alias=["shared"], backend="llama-server-cpu", enabled=False))
    write("beta.yaml", model_yaml("beta", alias=["shared"], backend="llama-server-cpu", enabled=False))
    r = cli("--state-dir", str(tmp_path / "state"), "plan", str(write.root))
    assert r.code == 0, r.err
    assert f"note: {SHARED}" in r.out.splitlines()
    r = cli("--state-dir", str(tmp_path / "state"), "plan", str(write.root), "-o", "json")
    assert r.json()["notes"] == [SHARED]
