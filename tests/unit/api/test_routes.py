"""Every endpoint through a TestClient, errors included. No backend binary exists: nothing is spawned."""

from __future__ import annotations

import os

import pytest

from xgen_declare.api import routes

P = "/api/management"
OFF = {"model_path": "/models/Qwen3-8B.Q4_K_M.gguf", "backend": "llama-server-cpu", "enabled": False}


def test_load_writes_manifest_and_same_spec_is_a_noop(api):
    r = api.client.post(P + "/load?wait=5", json=OFF)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("status", "model", "backend", "port", "endpoint")} == {
        "status": "success", "model": "qwen3-8b-q4-k-m", "backend": "llama-server-cpu", "port": None,
        "endpoint": None}  # enabled: false takes no port (#21 finding 8)
    assert (body["state"], body["changed"], body["manifest"]) == ("Stopped", True, "api/qwen3-8b-q4-k-m.yaml")
    path = api.manifests / "api" / "qwen3-8b-q4-k-m.yaml"
    text = path.read_text()
    assert "name: qwen3-8b-q4-k-m" in text and "enabled: false" in text
    assert not [f for f in os.listdir(path.parent) if f != path.name]  # no temp file left behind
    mtime = path.stat().st_mtime_ns
    again = api.client.post(P + "/load?wait=5", json=OFF).json()
    assert (again["status"], again["changed"]) == ("success", False)
    assert path.stat().st_mtime_ns == mtime


def test_load_explicit_name_and_relative_path_is_relative_to_dir(api):
    r = api.client.post(P + "/load?wait=5", json={**OFF, "name": "chat", "model_path": "models/a.gguf"})
    assert r.status_code == 200, r.text
    assert "model_path: ../models/a.gguf" in (api.manifests / "api" / "chat.yaml").read_text()


def test_load_invalid_is_422_with_field_paths_and_writes_nothing(api):
    r = api.client.post(P + "/load", json={"model_path": "/m/x.gguf", "ctx_size": -1, "n_gpu_layer": 3})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "spec.ctx_size", "message": "Input should be greater than or equal to 0", "hint": ""},
        {"field": "spec.n_gpu_layer", "message": "unknown field `n_gpu_layer`", "hint": "did you mean `n_gpu_layers`?"}]
    r = api.client.post(P + "/load", json={"model_path": "/m/x.gguf", "max_model_len": 4096})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "spec.max_model_len"
    assert not (api.manifests / "api").exists()


def test_load_refuses_values_that_would_be_read_as_flags(api):
    flag = "must not start with '-': a backend would read it as a command-line flag"
    r = api.client.post(P + "/load", json={"name": "evil", "model_path": "--model=evil/repo"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "spec.model_path", "message": flag,
                                   "hint": "write ./ before a file name that starts with '-'"}]
    r = api.client.post(P + "/load", json={"name": "evil", "model_path": "/m/x.gguf",
                                                          "alias": ["--trust-remote-code"]})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "spec.alias[0]", "message": flag,
                                   "hint": "start each alias with a letter or digit"}]
    assert not (api.manifests / "api").exists()


def test_load_bad_bodies(api):
    assert api.client.post(P + "/load", content=b"{nope").json()["detail"] == "the body is not valid JSON"
    assert api.client.post(P + "/load", json=[1]).status_code == 422
    assert api.client.post(P + "/load", content=b"").status_code == 422
    r = api.client.post(P + "/load?wait=-1", json=OFF)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.wait"


def test_exec_fields_refused_unless_allowed(api, tmp_path):
    for field, value in (("env", {"LD_PRELOAD": "/tmp/x.so"}), ("extra_args", ["--foo"]), ("binary", "/bin/sh")):
        r = api.client.post(P + "/load", json={**OFF, field: value})
        assert r.status_code == 403, field
        assert r.json()["errors"][0]["field"] == f"spec.{field}"
    api.ctx.settings.allow_exec_fields = True
    r = api.client.post(P + "/load?wait=5", json={**OFF, "env": {"A": "1"}})
    assert r.status_code == 200, r.text


def test_hand_written_name_is_409_for_load_and_unload(api):
    api.hand("team/chat.yaml", "chat")
    r = api.client.post(P + "/load", json={**OFF, "name": "chat"})
    assert r.status_code == 409
    assert r.json()["file"] == "team/chat.yaml" and "team/chat.yaml" in r.json()["detail"]
    assert str(api.manifests) not in r.text
    r = api.client.post(P + "/unload", json={"name": "chat"})
    assert r.status_code == 409 and r.json()["file"] == "team/chat.yaml"
    assert "edit or remove that file" in r.json()["detail"]
    assert api.client.post(P + "/unload", json={"name": "ghost"}).status_code == 404


def test_cross_file_conflict_rolls_back(api):
    api.hand("fixed.yaml", "fixed", port=29005, enabled=False)
    r = api.client.post(P + "/load", json={**OFF, "name": "clash", "port": 29005})
    assert r.status_code == 422, r.text
    assert "port 29005 is claimed by several models" in r.json()["errors"][0]["message"]
    assert not (api.manifests / "api" / "clash.yaml").exists()


def test_unload_removes_file_and_record(api):
    assert api.client.post(P + "/load?wait=5", json={**OFF, "name": "gone"}).status_code == 200
    assert api.daemon.env.store.load("gone") is not None
    r = api.client.post(P + "/unload?wait=5", json={"name": "gone"})
    assert r.json() == {"status": "success", "model": "gone", "state": "Stopped", "removed": "api/gone.yaml"}
    assert not (api.manifests / "api" / "gone.yaml").exists()
    assert api.daemon.env.store.load("gone") is None
    assert api.client.post(P + "/unload?name=gone").status_code == 404


def test_names_never_escape_dir(api, tmp_path):
    for bad in ("../x", "/etc/passwd", "a/b", "A", "-a", "x" * 64, "a.yaml", ""):
        r = api.client.post(P + "/load", json={**OFF, "name": bad})
        assert r.status_code == 422, bad
        assert api.client.post(P + "/unload", json={"name": bad}).status_code == 422
    assert api.client.get(P + "/models/..%2F..%2Fetc").status_code in (404, 422)
    assert api.client.get(P + "/models/UPPER").status_code == 422
    outside = tmp_path / "outside"
    outside.mkdir()
    (api.manifests / "api").symlink_to(outside)
    r = api.client.post(P + "/load", json={**OFF, "name": "x"})
    assert r.status_code == 409 and "symlink" in r.json()["detail"]
    assert not list(outside.iterdir())


def test_body_size_limit(api):
    big = {**OFF, "alias": ["a" * 1000] * 70}
    r = api.client.post(P + "/load", json=big)
    assert r.status_code == 413
    chunks = (b"x" * 10_000 for _ in range(10))  # no Content-Length: counted while reading
    assert api.client.post(P + "/load", content=chunks).status_code == 413


def test_host_header_allow_list(api):
    assert api.client.get(P + "/models", headers={"host": "evil.example:8000"}).status_code == 400
    assert api.client.get(P + "/models", headers={"host": "localhost:8000"}).status_code == 200
    assert api.client.get(P + "/models", headers={"host": "[::1]:8000"}).status_code == 200


def test_cross_origin_writes_refused(api):
    r = api.client.post(P + "/load", json=OFF, headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["detail"] == "cross-origin write refused"
    assert api.client.post(P + "/unload?name=x", headers={"origin": "null"}).status_code == 403
    assert not (api.manifests / "api").exists()
    # another port of this host is another origin (finding 21 of #21): only the server's own origin writes
    r = api.client.post(P + "/load?wait=5", json=OFF, headers={"origin": "http://localhost:3000"})
    assert r.status_code == 403 and r.json()["reason"] == "Origin 'http://localhost:3000' is not this server's origin"
    r = api.client.post(P + "/load?wait=5", json=OFF, headers={"origin": "http://127.0.0.1"})
    assert r.status_code == 200, r.text


def test_token_required_on_writes(api_token):
    c = api_token.client
    for path in ("/load", "/unload", "/reconcile"):
        r = c.post(P + path, json=OFF)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post(P + path, json=OFF, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert not (api_token.manifests / "api").exists()
    r = c.post(P + "/load?wait=5", json=OFF, headers={"authorization": "Bearer s3cret"})
    assert r.status_code == 200, r.text
    assert c.get(P + "/models").status_code == 200  # reads stay open


def test_blocked_model_answers_503_with_the_reason(api):
    r = api.client.post(P + "/load?wait=5", json={"model_path": "/m/x.gguf", "backend": "llama-server-cpu"})
    assert r.status_code == 503
    body = r.json()
    assert (body["status"], body["state"]) == ("error", "Blocked")
    assert "not found" in body["last_error"]


def test_gpu_the_host_lacks_is_blocked_with_the_reason(api):
    """The host (an empty sysfs: no GPU) is checked on load too, before anything else blocks the model."""
    r = api.client.post(P + "/load?wait=5", json={"name": "g7", "model_path": "/m/x.gguf",
                                                  "backend": "llama-server-cpu", "gpus": [7]})
    assert r.status_code == 503, r.text
    body = r.json()
    assert (body["status"], body["state"]) == ("error", "Blocked")
    assert body["last_error"] == ("api/g7.yaml:11: spec.gpus[0]: GPU 7 does not exist on this host (GPUs: none) "
                                  "(see `xgen-declare gpus`)")


def test_models_and_model(api):
    api.client.post(P + "/load?wait=5", json={**OFF, "name": "m1", "extra_args": []})
    api.hand("hand.yaml", "m2", backend="llama-server-cpu", enabled=False)
    api.client.post(P + "/reconcile")
    models = {m["name"]: m for m in api.client.get(P + "/models").json()["models"]}
    assert models["m1"]["source"] == "api" and models["m1"]["file"] == "api/m1.yaml"
    assert models["m2"]["source"] == "file" and models["m2"]["file"] == "hand.yaml"
    one = api.client.get(P + "/models/m1").json()
    assert {"state", "backend", "pid", "port", "endpoint", "restarts", "last_error", "argv"} <= set(one)
    assert api.client.get(P + "/models/nope").status_code == 404


def test_gpus_backends_plan_reconcile_metrics(api):
    assert api.client.get(P + "/gpus").json() == []
    names = {b["name"] for b in api.client.get(P + "/backends").json()}
    assert "llama-server-cpu" in names
    api.hand("p.yaml", "p", backend="llama-server-cpu", enabled=False)
    plan = api.client.get(P + "/plan").json()
    assert [a["name"] for a in plan["actions"]] == ["p"] and "summary" in plan
    r = api.client.post(P + "/reconcile").json()
    assert r["status"] == "success" and r["actions"][0]["name"] == "p"
    text = api.client.get("/metrics").text
    assert 'xgen_model_state{model="p",state="Stopped"} 1.0' in text
    assert "xgen_reconcile_duration_seconds_count" in text and "xgen_manifest_errors 0.0" in text


def test_manifest_errors_metric_and_event(api):
    (api.manifests / "bad.yaml").write_text("apiVersion: xgen/v1\nkind: Model\nmetadata: {name: bad}\n"
                                            "spec: {model_path: /m/x.gguf, ctx_sise: 1}\n")
    api.client.post(P + "/reconcile")
    assert "xgen_manifest_errors 1.0" in api.client.get("/metrics").text
    r = api.client.get(P + "/events?since=0&timeout=0.3")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "event: manifest_invalid" in r.text and "ctx_sise" in r.text
    assert str(api.manifests) not in r.text  # paths relative to DIR


def test_events_stream_state_changes(api):
    api.client.post(P + "/load?wait=5", json={"model_path": "/m/x.gguf", "backend": "llama-server-cpu", "name": "b"})
    r = api.client.get(P + "/events?since=0&timeout=0.3")
    assert "event: state" in r.text and '"new": "Blocked"' in r.text and "event: error" in r.text
    last = api.ctx.bus.last_id
    r = api.client.get(P + "/events?timeout=0.2", headers={"last-event-id": str(last)})
    assert "event:" not in r.text


def test_internal_errors_never_leak(api, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError(f"{api.manifests}/secret traceback")

    monkeypatch.setattr(routes, "status_rows", boom)
    r = api.client.get(P + "/models")
    assert r.status_code == 500
    assert r.json() == {"status": "error", "detail": "internal error (details are in the daemon's log)"}
    assert api.client.get(P + "/nope").json() == {"status": "error", "detail": "Not Found"}


def test_memory_from_the_ledger(api):
    tinygguf = pytest.importorskip("xgen_declare.tools.tinygguf")
    tinygguf.write_tiny_gguf(api.manifests / "tiny.gguf")
    api.client.post(P + "/load?wait=3", json={"name": "tiny", "model_path": "tiny.gguf", "backend": "llama-server-cpu"})
    memory = api.client.get(P + "/models/tiny").json()["memory"]
    assert memory["source"] == "predicted" and memory["bytes"]["host"] > 0
    prefix = 'xgen_model_memory_bytes{device="host",model="tiny",source="predicted"} '
    line = next(x for x in api.client.get("/metrics").text.splitlines() if x.startswith(prefix))
    assert float(line[len(prefix):]) == memory["bytes"]["host"]


def test_n_cpu_moe_through_load_is_in_the_memory_view(api):
    """#25 item 2 at the API's door: `load` takes n_cpu_moe like a manifest, and the model's memory view
    says what was decided (on this GPU-less host every layer is on the CPU: no expert bytes moved)."""
    tinygguf = pytest.importorskip("xgen_declare.tools.tinygguf")
    tinygguf.write_tiny_gguf(api.manifests / "tiny-moe.gguf", n_expert=4)
    api.client.post(P + "/load?wait=3", json={"name": "moe", "model_path": "tiny-moe.gguf",
                                              "backend": "llama-server-cpu", "n_cpu_moe": 1})
    memory = api.client.get(P + "/models/moe").json()["memory"]
    assert (memory["n_cpu_moe"], memory["cpu_moe_bytes"]) == (1, 0)
    bad = api.client.post(P + "/load", json={"name": "bad", "model_path": "tiny-moe.gguf", "n_cpu_moe": "every"})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"field": "spec.n_cpu_moe", "hint": "", "message": "must be auto, all or a "
                                     "layer count >= 0 (0 = off), e.g. n_cpu_moe: auto, n_cpu_moe: all or "
                                     "n_cpu_moe: 12"}]


# ---- #21 finding 5: reads never queue on the control loop; a full inbox answers 503 ---------------------

def test_plan_and_detail_answer_while_the_loop_is_held_and_its_inbox_full(api):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from xgen_declare.reconciler.daemon import INBOX_LIMIT

    pool = ThreadPoolExecutor(4)

    def get(path: str):  # a read that waits for the held loop fails here, in bounded time
        return pool.submit(api.client.get, P + path).result(timeout=10)

    api.hand("chat.yaml", "chat", backend="llama-server-cpu", enabled=False)
    assert api.client.post(P + "/reconcile").status_code == 200
    held, release = threading.Event(), threading.Event()
    api.daemon.submit(lambda d: (held.set(), release.wait(20)))  # a slow request holds the loop
    try:
        assert held.wait(10)
        for _ in range(INBOX_LIMIT):
            api.daemon.submit(lambda d: None)
        r = get("/plan")
        assert r.status_code == 200, r.text
        assert [(a["name"], a["kind"]) for a in r.json()["actions"]] == [("chat", "keep")]
        r = get("/models/chat/detail")
        assert r.status_code == 200 and r.json()["declared"] is True
        assert get("/models/nope/detail").status_code == 404
        r = api.client.post(P + "/reconcile")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json() == {"status": "error", "detail": f"the daemon is busy: {INBOX_LIMIT} requests already wait "
                            "for its control loop; try again in a moment", "retry_after": 1}
    finally:
        release.set()
        pool.shutdown(wait=False)
