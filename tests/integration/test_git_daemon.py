"""`xgen-declare run` following a git source (issue #24): a real daemon over fake backends, the repository
served by the real `git http-backend`, commits signed with SSH keys made in the test. The daemon starts
the models of the first good commit, restarts only the model a signed push changed, refuses an unsigned
push (nothing changes), keeps everything running while the server is away (and `status` says so), rolls
back with `pin` while it runs, and polls at once on a signed webhook (a bad signature polls nothing).
Every wait is bounded (the Host harness: 15 s by default)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time

import pytest

from tests.integration.conftest import manifest
from xgen_declare.testing.gitrepos import WorkRepo, write_allowed_signers
from xgen_declare.testing.gitserver import GitHttpServer
from xgen_declare.testing.harness import free_port, poll_until

SECRET = b"hook-secret"


@pytest.fixture
def git(tmp_path, alice):
    repo = WorkRepo.create(tmp_path / "work", bare=tmp_path / "srv" / "config.git")
    write_allowed_signers(tmp_path / "allowed_signers", [alice])
    (tmp_path / "hook-secret").write_bytes(SECRET + b"\n")
    with GitHttpServer(tmp_path / "srv") as srv:
        yield repo, srv


def host_config(host, srv, interval: str = "1s") -> str:
    """The host's own config (fake backends, ports) with a `source:` naming the served repository."""
    cfg = json.loads((host.manifests / "xgen-declare.yaml").read_text())
    cfg["source"] = {"git": srv.url("config.git"), "ref": "main", "path": "manifests", "interval": interval,
                     "verify": {"allowed_signers": str(host.root / "allowed_signers")},
                     "webhook_secret_file": str(host.root / "hook-secret")}
    path = host.root / "host.yaml"
    path.write_text(json.dumps(cfg))
    return str(path)


def source(host) -> dict:
    r = host.cli("source", "status", "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_source(host, pred, what: str, timeout: float = 15) -> dict:
    last: dict = {}

    def holds() -> bool:
        nonlocal last
        r = host.cli("source", "status", "-o", "json")  # exit 2 until the daemon recorded its source
        last = json.loads(r.stdout) if r.returncode == 0 else {"exit": r.returncode, "stderr": r.stderr}
        return r.returncode == 0 and bool(pred(last))

    assert poll_until(holds, timeout, 0.2) is not None, f"{what}; last: {last}\n{host.daemon_log()[-3000:]}"
    return last


def pids(status: dict, *names: str) -> dict[str, int]:
    return {n: status[n]["pid"] for n in names}


def test_daemon_follows_signed_commits_refuses_unsigned_and_pins_back(host, git, alice):
    repo, srv = git
    unsigned = repo.commit({"manifests/a.yaml": manifest("a"), "manifests/b.yaml": manifest("b")}, "unsigned")
    repo.push()
    config = host_config(host, srv)
    host.start("--config", config, target=())
    # no good commit yet: the daemon runs, says so and keeps polling
    wait_source(host, lambda s: s["last_poll"] and s["last_poll"]["reason"] == "unsigned", "the unsigned refusal")
    assert host.proc.poll() is None
    assert "no good commit yet; models start once one is fetched, verified and valid" in host.daemon_log()
    assert host.status() == {}
    status = host.cli("status")
    assert status.returncode == 0
    assert f"source: {srv.url('config.git')}#main//manifests at none yet (no good commit fetched: the daemon " \
           "waits for one)" in status.stderr
    assert f"refused (unsigned), fetched {unsigned[:12]}: commit {unsigned[:12]} is not signed" in status.stderr

    first = repo.commit({}, "signed", signer=alice)
    repo.push()
    before = host.wait_ready("a", "b")
    assert source(host)["serving"]["commit"] == first

    second = repo.commit({"manifests/a.yaml": manifest("a", ctx_size=4096)}, "a: ctx 4096", signer=alice)
    repo.push()
    after = host.wait(lambda s: s["a"]["pid"] != before["a"]["pid"] and s["a"]["state"] == "Ready",
                      what="a restarted on the new commit")
    assert after["b"]["pid"] == before["b"]["pid"] and after["b"]["restarts"] == before["b"]["restarts"]
    assert source(host)["serving"]["commit"] == second

    bad = repo.commit({"manifests/a.yaml": manifest("a", ctx_size=8192)}, "unsigned change")
    repo.push()
    s = wait_source(host, lambda s: s["last_poll"]["fetched"] == bad, "the unsigned push polled")
    assert (s["last_poll"]["reason"], s["current"]["commit"], s["serving"]["commit"]) == ("unsigned", second, second)
    assert pids(host.status(), "a", "b") == pids(after, "a", "b")
    assert host.daemon_log().count(f"commit {bad[:12]} is not signed") == 1  # once per change, not per poll

    r = host.cli("pin", first, "--config", config)
    assert r.returncode == 0, r.stderr
    rolled = host.wait(lambda s: s["a"]["pid"] != after["a"]["pid"] and s["a"]["state"] == "Ready",
                       what="a rolled back by the pin")
    assert rolled["b"]["pid"] == before["b"]["pid"]
    s = source(host)
    assert (s["serving"]["commit"], s["pin"]["commit"]) == (first, first)

    srv.go_away()
    s = wait_source(host, lambda s: s["last_poll"]["error"] and "cannot fetch" in s["last_poll"]["error"],
                    "the fetch failure")
    assert s["serving"]["commit"] == first
    text = host.cli("status").stderr
    assert f"source: {srv.url('config.git')}#main//manifests at {first[:12]} (applied " in text
    assert f"; pinned at {first[:12]} (`xgen-declare unpin` to follow main)" in text
    assert ": pinned (fetch_failed): cannot fetch " in text
    assert pids(host.status(), "a", "b") == pids(rolled, "a", "b")
    assert host.proc.poll() is None

    # a new daemon (the remote still away) serves the last good commit at once and adopts both models
    host.kill_daemon()
    polled = source(host)["last_poll"]["at"]
    host.start("--config", config, target=())
    wait_source(host, lambda s: s["last_poll"]["at"] > polled, "a poll of the new daemon")
    assert "no good commit yet" not in (host.root / "daemon1.log").read_text()
    assert pids(host.wait_ready("a", "b"), "a", "b") == pids(rolled, "a", "b")
    assert source(host)["serving"]["commit"] == first


def _post(port: int, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_a_signed_webhook_polls_at_once_and_a_bad_one_polls_nothing(host, git, alice):
    repo, srv = git
    first = repo.commit({"manifests/a.yaml": manifest("a")}, "first", signer=alice)
    repo.push()
    port = free_port()
    host.start("--config", host_config(host, srv, interval="1h"), "--api", "--api-port", str(port), target=())
    host.wait_ready("a")
    s = wait_source(host, lambda s: s["serving"]["commit"] == first, "first commit served")
    polled_at = s["last_poll"]["at"]

    second = repo.commit({"manifests/a.yaml": manifest("a", ctx_size=4096)}, "second", signer=alice)
    repo.push()
    body = json.dumps({"ref": "refs/heads/main", "after": second}).encode()
    bad = {"X-Hub-Signature-256": "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest(),
           "X-GitHub-Event": "push", "Content-Type": "application/json"}
    assert _post(port, "/api/management/source/webhook", body, bad) == (
        401, {"status": "error", "detail": "the github webhook's signature does not match the secret"})
    time.sleep(1.0)  # what a poll would take here: none may have happened
    assert source(host)["last_poll"]["at"] == polled_at

    good = {**bad, "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()}
    sent = time.time()
    assert _post(port, "/api/management/source/webhook", body, good) == (
        202, {"status": "accepted", "detail": "github push: polling now"})
    s = wait_source(host, lambda s: s["last_poll"]["fetched"] == second, "the webhook's poll", timeout=5)
    assert s["last_poll"]["at"] - sent < 1.0
    host.wait(lambda st: st["a"]["state"] == "Ready" and st["a"]["pid"] is not None
              and source(host)["serving"]["commit"] == second, what="the second commit served")

    code, raw = _get(port, "/api/management/source")
    api = json.loads(raw)
    assert code == 200
    assert (api["serving"]["commit"], api["source"]["url"], api["last_poll"]["outcome"]) == (
        second, srv.url("config.git"), "switched")
    code, raw = _get(port, "/metrics")
    text = raw.decode()
    assert f'xgen_source_commit_info{{commit="{second}"}} 1.0' in text
    assert "xgen_source_poll_failures_total 0.0" in text
    assert "xgen_source_last_success_timestamp " in text
    code, raw = _get(port, "/api/management/events?since=0&timeout=1")
    events = [json.loads(line[len("data: "):]) for line in raw.decode().splitlines() if line.startswith("data: ")]
    switched = [(e["old"], e["new"]) for e in events if e["type"] == "source_switched"]
    assert switched == [(None, first), (first, second)]


    # a hung remote holds only the poller thread: the API answers and `down` stops a model meanwhile
    hung: list[int] = []
    release = srv.released.wait
    srv.released.wait = lambda timeout=None: (hung.append(1), release(timeout))[1]
    srv.stall()
    try:
        assert _post(port, "/api/management/source/webhook", body, good)[0] == 202
        assert poll_until(lambda: hung, 10, 0.05) is not None, "the poll never reached the stalled server"
        started = time.monotonic()
        assert _get(port, "/api/management/models")[0] == 200
        r = host.cli("down", "a", timeout=30)
        assert r.returncode == 0, r.stderr
        host.wait(lambda st: st["a"]["state"] == "Stopped", timeout=10, what="a stopped while the fetch hangs")
        assert time.monotonic() - started < 20  # the fetch's own timeout (source.timeout) is 120 s
    finally:
        srv.stall(False)


def test_run_git_url_with_verify_flag_refuses_unsigned_and_applies_signed(host, git, alice):
    """The one-liner: `run git+URL --verify-allowed-signers FILE` (no `source:` in any config) verifies as
    the config's source.verify does."""
    repo, srv = git
    unsigned = repo.commit({"manifests/a.yaml": manifest("a")}, "unsigned")
    repo.push()
    cfg = json.loads((host.manifests / "xgen-declare.yaml").read_text())  # fake backends and ports only
    (host.root / "plain.yaml").write_text(json.dumps(cfg))
    host.start("--config", str(host.root / "plain.yaml"), "--verify-allowed-signers",
               str(host.root / "allowed_signers"), target=(f"git+{srv.url('config.git')}#main//manifests",))
    s = wait_source(host, lambda s: s["last_poll"] and s["last_poll"]["reason"] == "unsigned", "the refusal")
    assert (s["source"]["verify"], s["current"]["commit"], s["last_poll"]["fetched"]) == (True, None, unsigned)
    assert host.proc.poll() is None and host.status() == {}
    signed = repo.commit({}, "signed", signer=alice)
    repo.push()
    r = host.cli("sync")  # the source the daemon recorded, flags included (its poll is every 30 s)
    assert r.returncode == 0 and "good signature by alice@example.org" in r.stdout, r.stdout + r.stderr
    host.wait_ready("a")
    assert source(host)["serving"]["commit"] == signed
