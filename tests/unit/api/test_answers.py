"""Answers that say what happened to *this* request: a manifest that cannot be written (503 with the
cause), a load superseded by a later write, a load whose spec has not started while an older one runs."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from types import SimpleNamespace

from fastapi.testclient import TestClient

from xgen_declare.api import declare, routes
from xgen_declare.states import State

P = "/api/management"
OFF = {"model_path": "/models/Qwen3-8B.Q4_K_M.gguf", "backend": "llama-server-cpu", "enabled": False, "name": "m"}
LAZY = {**OFF, "enabled": True, "activation": "on-demand"}  # no backend binary: stays Idle, never Ready


def _denied(path, text):  # the seam: what a read-only manifests dir answers a non-root daemon
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def test_unwritable_manifest_is_503_with_the_cause(api, monkeypatch):
    monkeypatch.setattr(declare, "atomic_write", _denied)
    r = api.client.post(P + "/load?wait=1", json=OFF)
    assert r.status_code == 503, r.text
    assert r.json() == {"status": "error", "detail": "cannot write api/m.yaml: permission denied", "model": "m",
                        "manifest": "api/m.yaml"}


def test_a_path_that_really_fails_is_503_too(api):
    """No seam: a directory where the atomic write's temp file goes (fails for root as well)."""
    (api.manifests / "api" / f".m.yaml.{os.getpid()}.tmp").mkdir(parents=True)
    r = api.client.post(P + "/load?wait=1", json=OFF)
    assert r.status_code == 503, r.text
    assert r.json()["detail"] == "cannot write api/m.yaml: is a directory"
    assert not (api.manifests / "api" / "m.yaml").exists()


def test_unremovable_manifest_is_503_with_the_cause(api):
    """No seam: api/m.yaml is a directory, which unlink refuses (root too)."""
    (api.manifests / "api" / "m.yaml").mkdir(parents=True)
    r = api.client.post(P + "/unload?wait=1", json={"name": "m"})
    assert r.status_code == 503, r.text
    assert r.json() == {"status": "error", "detail": "cannot remove api/m.yaml: is a directory",
                        "model": "m", "manifest": "api/m.yaml"}


def test_a_load_superseded_by_a_later_write_says_so_at_once(api):
    with TestClient(api.client.app, base_url="http://127.0.0.1") as client:  # one event loop, as under uvicorn
        a, b, t0 = _two_loads(api, client)
    assert time.monotonic() - t0 < 10  # not after its 20 s wait
    assert a.status_code == 409, a.text
    assert {k: a.json()[k] for k in ("status", "detail", "model", "manifest")} == {
        "status": "superseded", "model": "m", "manifest": "api/m.yaml",
        "detail": "a later write of api/m.yaml (another load, an edit or an unload) replaced this request before "
                  "its spec was Ready; the model follows the file"}
    assert b.status_code == 202 and (b.json()["status"], b.json()["state"]) == ("pending", "Idle"), b.text


def _two_loads(api, client):
    answers = {}

    def first():
        answers["a"] = client.post(P + "/load?wait=20", json={**LAZY, "ctx_size": 1024})

    t0 = time.monotonic()
    thread = threading.Thread(target=first)
    thread.start()
    path = api.manifests / "api" / "m.yaml"
    while not (path.exists() and "ctx_size: 1024" in path.read_text()):
        assert time.monotonic() - t0 < 10
        time.sleep(0.02)
    b = client.post(P + "/load?wait=0.5", json={**LAZY, "ctx_size": 2048})
    thread.join(30)
    return answers["a"], b, t0


def test_pending_names_the_state_of_its_own_spec(api):
    """A spec that has not started while an older one is Ready answers Pending, not Ready."""
    rec = SimpleNamespace(state_enum=State.READY, spec_hash="old", held=False, port=29001, backend="llama-server-cpu",
                          endpoint=None, last_error=None)
    want = SimpleNamespace(enabled=True, spec_hash="new", host="127.0.0.1", port=29001, backend="llama-server-cpu")
    request = SimpleNamespace(headers={})
    r = routes._load_answer(api.ctx, request, "m", want, rec, True, "api/m.yaml", 3)
    body = json.loads(r.body)
    assert (r.status_code, body["status"], body["state"]) == (202, "pending", "Pending")
    assert body["detail"] == ("not Ready after 3s: this spec has not started yet (the model still runs its "
                              "previous spec, Ready); follow /api/management/events or /api/management/models/m")
    rec.spec_hash = "new"  # its own spec, still starting
    rec.state_enum = State.STARTING
    body = json.loads(routes._load_answer(api.ctx, request, "m", want, rec, True, "api/m.yaml", 3).body)
    assert (body["status"], body["state"]) == ("pending", "Starting")
    assert body["detail"] == "not Ready after 3s; follow /api/management/events or /api/management/models/m"


def test_a_models_answer_is_made_from_one_read_of_the_records(api, monkeypatch):
    """The row (state, pid, uptime) and the record's facts (argv, started_at, memory) come from the same
    read: a record rewritten between two reads never mixes two moments in one answer."""
    assert api.client.post(P + "/load?wait=1", json=OFF).status_code in (200, 202)
    store = api.daemon.env.store
    real, reads = store.load_all, []
    loop_thread = api.daemon.submit(lambda d: threading.get_ident()).result(timeout=10)

    def counted():
        if threading.get_ident() != loop_thread:  # the API's reads, not the control loop's
            reads.append(1)
        return real()

    monkeypatch.setattr(store, "load_all", counted)
    body = api.client.get(P + "/models").json()
    assert [m["name"] for m in body["models"]] == ["m"]
    assert len(reads) == 1
    reads.clear()
    assert api.client.get(P + "/models/m").json()["name"] == "m"
    assert len(reads) == 1


def test_a_link_at_the_temp_name_is_never_written_through(api, tmp_path):
    """#21 finding 13: the manifest's temp file (api/.NAME.yaml.PID.tmp) is created O_EXCL|O_NOFOLLOW; a
    link planted at its name is removed, its target never clobbered."""
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    (api.manifests / "api").mkdir(parents=True)
    (api.manifests / "api" / f".m.yaml.{os.getpid()}.tmp").symlink_to(target)
    r = api.client.post(P + "/load?wait=1", json=OFF)
    assert r.status_code == 200, r.text
    assert target.read_text() == "keep me\n"
    assert "name: m" in (api.manifests / "api" / "m.yaml").read_text()
