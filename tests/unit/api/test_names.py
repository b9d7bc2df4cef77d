"""Issue 12 item 3 through the management API and the router: a name that is not a model name is
refused before it touches a file, and a manifest declaring one gives no route and no record.
('abc\\n' passed the API's check before: `$` matches before a trailing newline.)"""

from __future__ import annotations

import time

P = "/api/management"
OFF = {"model_path": "/models/x.gguf", "backend": "llama-server-cpu", "enabled": False}
NAME_ERROR = [{"field": "name", "message": "must match ^[a-z0-9][a-z0-9-]{0,62}$ (a DNS label: lowercase letters, "
               "digits and '-', starting with a letter or digit)", "hint": "e.g. qwen3-8b-q4-k-m"}]


def test_load_unload_and_model_refuse_bad_names(api):
    for bad in ("abc\n", "../../x", "a\0b", "x" * 250):
        r = api.client.post(P + "/load", json={**OFF, "name": bad})
        assert (r.status_code, r.json()["errors"]) == (422, NAME_ERROR), bad
        r = api.client.post(P + "/unload", json={"name": bad})
        assert (r.status_code, r.json()["errors"]) == (422, NAME_ERROR), bad
    assert api.client.get(P + "/models/abc%0A").status_code == 422
    assert not (api.manifests / "api").exists()
    assert sorted(p.name for p in api.root.joinpath("state").iterdir()) == ["daemon.json", "daemon.lock", "owner_id"]


def test_router_has_no_route_and_makes_no_record_for_a_bad_name(api):
    api.hand("lazy.yaml", "lazy", activation="on-demand", backend="llama-server-cpu")
    (api.manifests / "bad.yaml").write_text(
        'apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: "abc\\n"\nspec:\n  model_path: /models/x.gguf\n'
        "  backend: llama-server-cpu\n  activation: on-demand\n")
    api.daemon.file_changed()
    deadline = time.monotonic() + 5
    while "lazy" not in api.daemon.sup.procs and time.monotonic() < deadline:
        time.sleep(0.02)
    r = api.client.post("/v1/chat/completions", json={"model": "abc\n"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert [m["id"] for m in api.client.get("/v1/models").json()["data"]] == ["lazy"]
    api.daemon.submit(lambda d: d.reconcile(full=True)).result(10)
    assert sorted(api.daemon.sup.procs) == ["lazy"]
    assert sorted(p.name for p in api.root.joinpath("state", "models").iterdir()) == ["lazy.json"]
