"""/v1 through a TestClient on an in-process daemon (no backend binary: nothing can start)."""

from __future__ import annotations

import time

from tests.unit.api.conftest import make_api, stop

import pytest


@pytest.fixture
def api(tmp_path):
    a, t = make_api(tmp_path)
    yield a
    stop(a, t)


def wait_idle(api, name):
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if api.client.get("/v1/models").json()["data"]:
            p = api.daemon.sup.procs.get(name)
            if p is not None and p.state.value == "Idle":
                return
        time.sleep(0.02)
    raise AssertionError("not Idle")


def test_models_errors_and_queue_limit(api):
    api.hand("a.yaml", "a", alias=["gpt-a"], backend="llama-server-cpu")
    api.hand("lazy.yaml", "lazy", activation="on-demand", backend="llama-server-cpu")
    api.daemon.file_changed()
    wait_idle(api, "lazy")
    c = api.client
    models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
    assert models["lazy"]["state"] == "Idle" and models["lazy"]["activation"] == "on-demand"
    assert models["a"]["aliases"] == ["gpt-a"]

    r = c.post("/v1/chat/completions", json={"model": "b"})
    assert r.status_code == 404 and r.json() == {"error": {
        "message": "the model 'b' does not exist; known models: a, lazy, gpt-a", "type": "invalid_request_error",
        "param": "model", "code": "model_not_found", "known": ["a", "lazy", "gpt-a"]}}
    r = c.post("/v1/completions", content=b"[1, 2")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("the body is not valid JSON (line 1")
    assert c.post("/v1/completions", json=[1]).json()["error"]["code"] == "invalid_body"
    assert c.post("/v1/completions", json={"model": 3}).json()["error"]["code"] == "invalid_model"
    assert c.get("/v1/whatever").json()["error"]["code"] == "missing_model"

    r = c.post("/v1/chat/completions", json={"model": "lazy"})  # no binary: cannot start, says why
    assert r.status_code == 503 and r.json()["error"]["message"].startswith("lazy cannot start: binary ")
    api.ctx.router.queue_limit = 0
    r = c.post("/v1/chat/completions", json={"model": "lazy"})
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    assert r.headers["retry-after"] == "5"
    r = c.post("/v1/embeddings", content=b"x" * (33 << 20))
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    metrics = c.get("/metrics").text
    assert 'xgen_router_requests_total{code="429",model="lazy"} 1.0' in metrics


def test_token_guards_every_v1_path(tmp_path):
    a, t = make_api(tmp_path, token="s3cret")
    try:
        r = a.client.get("/v1/models")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["type"] == "authentication_error"
        assert a.client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert a.client.post("/v1/chat/completions", json={"model": "x"}).status_code == 401
    finally:
        stop(a, t)


def test_router_limits_come_from_the_config(tmp_path):
    from tests.unit.api.conftest import make_api, stop

    api, thread = make_api(tmp_path, router={"queue_limit": 3, "max_body_mib": 1, "upstream_read_timeout": 42})
    try:
        assert api.ctx.router.queue_limit == 3 and api.ctx.router.timeout.read == 42
        r = api.client.post("/v1/embeddings", content=b"x" * (2 << 20))
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        r = api.client.post("/v1/embeddings", content=b"x" * (1 << 19))  # under the limit: parsed (not JSON)
        assert r.status_code == 400
    finally:
        stop(api, thread)


def test_deeply_nested_body_is_400_not_500(api):
    r = api.client.post("/v1/chat/completions", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {"message": "the body nests too deeply to be read as JSON", "type":
                                 "invalid_request_error", "param": None, "code": "invalid_json"}


def test_an_invalid_manifest_with_nothing_running_is_503_with_the_error(api):
    api.hand("a.yaml", "a", alias=["gpt-a"], backend="llama-server-cpu")  # no binary: never runs
    api.client.post("/api/management/reconcile")
    assert api.client.post("/v1/chat/completions", json={"model": "gpt-a"}).status_code == 503
    api.hand("a.yaml", "a", alias=["gpt-a"], backend="llama-server-cpu", ctx_sise=1)
    api.client.post("/api/management/reconcile")
    r = api.client.post("/v1/chat/completions", json={"model": "gpt-a"})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == {
        "message": "a's manifest is invalid and its last good process is not running: a.yaml:8: spec.ctx_sise: "
                   "unknown field `ctx_sise` (did you mean `ctx_size`?)", "type": "server_error", "param": None,
        "code": "manifest_invalid", "state": "Invalid"}


def test_a_get_wakes_no_model_without_a_token_and_cross_site_reads_are_refused(api):
    """Issue #21 finding 9: an <img src=".../v1/x?model=lazy"> on any page woke an on-demand model."""
    api.hand("lazy.yaml", "lazy", activation="on-demand", backend="llama-server-cpu")
    api.daemon.file_changed()
    wait_idle(api, "lazy")
    r = api.client.get("/v1/props?model=lazy")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == {
        "message": "lazy is Idle (on-demand) and a GET does not start it while the router has no token (any web page "
                   "could send one): send the request as a POST, or set api.token_file / XGEN_API_TOKEN",
        "type": "server_error", "param": None, "code": "model_idle", "state": "Idle"}
    assert "lazy" not in api.daemon.awake
    r = api.client.get("/v1/props?model=lazy", headers={"sec-fetch-site": "cross-site", "sec-fetch-dest": "image"})
    assert r.status_code == 403 and r.json()["error"] == {
        "message": "cross-origin request refused (Sec-Fetch-Site is 'cross-site')", "type": "invalid_request_error",
        "param": None, "code": "cross_origin"}
    r = api.client.post("/v1/completions", json={"model": "lazy"}, headers={"origin": "http://127.0.0.1:9999"})
    assert r.status_code == 403 and r.json()["error"]["message"] == (
        "cross-origin write refused (Origin 'http://127.0.0.1:9999' is not this server's origin)")
    # a POST still wakes it (here it cannot start: no binary, and says so)
    r = api.client.post("/v1/completions", json={"model": "lazy"}, headers={"origin": "http://127.0.0.1"})
    assert r.status_code == 503 and r.json()["error"]["message"].startswith("lazy cannot start: binary ")


def test_with_a_token_a_get_may_wake(tmp_path):
    a, t = make_api(tmp_path, token="s3cret")
    try:
        a.hand("lazy.yaml", "lazy", activation="on-demand", backend="llama-server-cpu")
        a.daemon.file_changed()
        auth = {"Authorization": "Bearer s3cret"}
        deadline = time.monotonic() + 5
        while (p := a.daemon.sup.procs.get("lazy")) is None or p.state.value != "Idle":
            assert time.monotonic() < deadline, "not Idle"
            a.client.get("/v1/models", headers=auth)
        r = a.client.get("/v1/props?model=lazy", headers=auth)
        assert r.status_code == 503 and r.json()["error"]["message"].startswith("lazy cannot start: binary ")
    finally:
        stop(a, t)


def test_a_wake_that_finds_the_loop_busy_is_an_openai_503_with_retry_after(api, monkeypatch):
    """#21 finding 5's bounded inbox, seen from /v1: a full inbox answered the client in the management
    API's shape ({"status": "error", ...}); an OpenAI client reads {"error": {...}}."""
    from xgen_declare.errors import LoopBusy

    api.hand("lazy.yaml", "lazy", activation="on-demand", backend="llama-server-cpu")
    api.daemon.file_changed()
    wait_idle(api, "lazy")

    def busy(fn):
        raise LoopBusy("the daemon is busy: 64 requests already wait for its control loop; try again in a moment")

    monkeypatch.setattr(api.daemon, "submit", busy)
    r = api.client.post("/v1/completions", json={"model": "lazy"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.json()["error"] == {
        "message": "the daemon is busy: 64 requests already wait for its control loop; try again in a moment",
        "type": "server_error", "param": None, "code": "daemon_busy"}


def test_a_model_for_other_hosts_is_a_404_that_says_so(api):
    import time

    api.hand("a.yaml", "a", backend="llama-server-cpu")
    api.hand("far.yaml", "far", backend="llama-server-cpu", hosts={"matchLabels": {"role": "gpu-box"}})
    api.daemon.file_changed()
    c = api.client
    deadline = time.monotonic() + 5
    # before the daemon's first pass the table comes straight from the manifests (no host labels yet)
    while [m["id"] for m in c.get("/v1/models").json()["data"]] != ["a"]:
        assert time.monotonic() < deadline, "the pass's table (a only) never listed"
        time.sleep(0.02)
    r = c.post("/v1/chat/completions", json={"model": "far"})
    assert r.status_code == 404 and r.json()["error"]["message"] == (
        "the model 'far' is not served on this host: its spec.hosts does not select it (role In [gpu-box] (this "
        "host: no role label)); send the request to a host that runs it")
