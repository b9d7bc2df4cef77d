"""The git source's routes (api/source.py) on an in-process daemon: 404 without a source; GET source is
sources/report.py's JSON; the webhook polls only for a valid signature (401 otherwise, 413 for a body
over the limit before it is read, 503 naming the field for an unreadable secret file); load and unload
are refused while the manifests come from git; /metrics carries the source's series."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from xgen_declare.reconciler.gitpoll import GitPoll
from xgen_declare.sources.spec import GitSpec

URL = "file:///srv/git/llm.git"


@pytest.fixture
def polls(api, tmp_path):
    """The daemon follows a (never fetched) source; poll_now() is recorded instead of waking a thread."""
    (tmp_path / "hook").write_text("s3cret\n")
    spec = GitSpec(url=URL, ref="main", path="manifests", webhook_secret_file=str(tmp_path / "hook"))
    source = GitPoll(spec, str(tmp_path / "state"))
    calls: list[int] = []
    source.poll_now = lambda: calls.append(1)
    api.daemon.source = source
    yield calls
    api.daemon.source = None


def signed(body: bytes, secret: bytes = b"s3cret") -> dict:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
            "X-GitHub-Event": "push"}


def test_without_a_source_both_routes_answer_404(api):
    detail = ("this daemon follows no git source (it serves a local manifests dir); run it with a config that has "
              "`source:` or with git+URL to use this endpoint")
    r = api.client.get("/api/management/source")
    assert (r.status_code, r.json()) == (404, {"status": "error", "detail": detail})
    r = api.client.post("/api/management/source/webhook", content=b"{}", headers=signed(b"{}"))
    assert r.status_code == 404


def test_get_source_is_the_report(api, polls):
    r = api.client.get("/api/management/source")
    assert r.status_code == 200
    assert r.json() == {"source": {"url": URL, "ref": "main", "path": "manifests", "verify": False, "interval": 30.0},
                        "current": {"commit": None, "short": None, "at": None},
                        "serving": {"commit": None, "short": None, "at": None},
                        "pin": None, "last_poll": None, "last_gc": None, "problems": []}


@pytest.mark.parametrize("path", ["/api/management/source/webhook", "/api/management/hooks/git"])
def test_a_signed_push_polls_now(api, polls, path):
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    r = api.client.post(path, content=body, headers=signed(body))
    assert (r.status_code, r.json(), polls) == (202, {"status": "accepted", "detail": "github push: polling now"}, [1])


def test_a_bad_or_missing_signature_is_401_and_polls_nothing(api, polls):
    body = b'{"ref": "refs/heads/main"}'
    r = api.client.post("/api/management/source/webhook", content=body, headers=signed(body, b"wrong"))
    assert (r.status_code, r.json()["detail"]) == (401, "the github webhook's signature does not match the secret")
    r = api.client.post("/api/management/source/webhook", content=body)
    assert r.status_code == 401 and r.json()["detail"].startswith("no signature: X-Hub-Signature-256")
    ping = {**signed(body), "X-GitHub-Event": "ping"}
    r = api.client.post("/api/management/source/webhook", content=body, headers=ping)
    assert (r.status_code, r.json()["status"]) == (200, "ok")
    assert polls == []


def test_a_body_over_the_limit_is_refused_before_it_is_read(api, polls):
    r = api.client.post("/api/management/source/webhook", content=b"{}",
                        headers={**signed(b"{}"), "Content-Length": str(1 << 30)})
    assert r.status_code == 413 and polls == []


def test_an_unreadable_secret_file_is_503_naming_the_field(api, polls, tmp_path):
    (tmp_path / "hook").unlink()
    r = api.client.post("/api/management/source/webhook", content=b"{}", headers=signed(b"{}"))
    assert r.status_code == 503
    assert r.json()["detail"] == (f"source.webhook_secret_file: cannot read {tmp_path / 'hook'}: No such file or "
                                  "directory (check the path and permissions); the webhook cannot be checked, "
                                  "nothing is polled")
    assert polls == []


def test_load_and_unload_are_refused_while_the_manifests_come_from_git(api, polls):
    detail = (f"this daemon's manifests come from the git source {URL}: {{}} a model by committing its manifest to "
              "the repository (the daemon applies the next signed commit)")
    r = api.client.post("/api/management/load?wait=0", json={"name": "m", "model_path": "/models/m.gguf"})
    assert (r.status_code, r.json()["detail"]) == (409, detail.format("load"))
    r = api.client.post("/api/management/unload?wait=0", json={"name": "m"})
    assert (r.status_code, r.json()["detail"]) == (409, detail.format("unload"))
    assert not (api.manifests / "api").exists()


def test_metrics_carry_the_source_only_with_one(api, polls):
    text = api.client.get("/metrics").text
    assert "xgen_source_poll_failures_total 0.0" in text
    assert "xgen_source_last_success_timestamp 0.0" in text
    assert "xgen_source_commit_info{" not in text  # nothing served yet
    assert 'xgen_source_gc_runs_total{outcome="ok"} 0.0' in text and "xgen_source_last_gc_timestamp 0.0" in text
    assert "\nxgen_source_repo_bytes " not in text  # no collection recorded
    api.daemon.source = None
    assert "xgen_source_" not in api.client.get("/metrics").text


def test_a_collection_is_in_the_answer_and_the_metrics(api, polls):
    source = api.daemon.source
    source.wall = lambda: 1700000000.0
    source.source.root.mkdir(parents=True)
    assert source.collect().error is None  # no repository yet: nothing to collect, recorded all the same
    r = api.client.get("/api/management/source").json()
    assert r["last_gc"] == {"at": 1700000000.0, "ok": True, "error": None, "before": None, "after": None,
                            "kept": []}
    text = api.client.get("/metrics").text
    assert 'xgen_source_gc_runs_total{outcome="ok"} 1.0' in text
    assert 'xgen_source_gc_runs_total{outcome="failed"} 0.0' in text
    assert "xgen_source_last_gc_timestamp 1.7e+09" in text and "\nxgen_source_repo_bytes " not in text
    (source.root / "last_gc").write_text("[]")  # damaged: a problem in the answer, no series, no 500
    r = api.client.get("/api/management/source")
    assert r.status_code == 200 and r.json()["problems"] == [
        "$STATE_DIR/source/last_gc is not a JSON object (remove it; xgen-declare writes it)"]  # the API scrubs
    assert "xgen_source_last_gc_timestamp 0.0" in api.client.get("/metrics").text
