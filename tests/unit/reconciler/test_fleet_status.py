"""`fleet status --hosts hosts.yaml` (issue 24 item 7; reconciler/fleet_status.py): hosts.yaml validated with
file:line: field, every host asked at once over real loopback HTTP, each within the file's timeout; a host
that hangs, refuses or answers nonsense is one row; `--commit` exits 3 unless every host serves it."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from xgen_declare.errors import InventoryFileError
from xgen_declare.reconciler.fleet_status import ask_hosts, load_hosts, serves_commit

A, B = "a" * 40, "b" * 40


def host_api(commit: str | None, models: list[dict], *, pending: dict | None = None, hang: threading.Event | None = None,
             last_poll: dict | None = None, token: str = "tok"):
    """A stand-in for a host's management API on loopback: canned JSON, Bearer token checked."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization") or "")
            if hang is not None:
                hang.wait(10)  # bounded: the test sets it at teardown
            if self.headers.get("Authorization") != f"Bearer {token}":
                return self._send(401, {"detail": "token"})
            if self.path.endswith("/models"):
                return self._send(200, {"models": models})
            if self.path.endswith("/source"):
                if commit is None:
                    return self._send(404, {"detail": "no source"})
                return self._send(200, {"serving": {"commit": commit}, "current": {"commit": commit},
                                        "last_poll": last_poll})
            if self.path.endswith("/plan"):
                return self._send(200, {"actions": [{"name": n, "kind": k} for n, k in (pending or {}).items()]})
            self._send(404, {})

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def servers():
    started, events = [], []

    def start(*args, **kw):
        server, seen = host_api(*args, **kw)
        started.append(server)
        if kw.get("hang"):
            events.append(kw["hang"])
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield start
    for e in events:
        e.set()
    for s in started:
        s.shutdown()
        s.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hosts_yaml(tmp_path, entries: list[tuple[str, str]], timeout: str = "5s") -> str:
    (tmp_path / "tok").write_text("tok\n")
    body = "".join(f"  - {{name: {n}, url: '{u}', token_file: tok}}\n" for n, u in entries)
    path = tmp_path / "hosts.yaml"
    path.write_text(f"timeout: {timeout}\nhosts:\n{body}")
    return str(path)


def model(name: str, commit: str, state: str = "Ready") -> dict:
    return {"name": name, "state": state, "provenance": {"file": f"{name}.yaml", "commit": commit}}


def test_the_hosts_file_is_validated_with_file_line_and_field(tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text("timeout: soon\nhosts:\n  - {name: a, url: 'ftp://x', token_file: nope}\n"
                    "  - {name: B, url: 'http://127.0.0.1:1', token_fil: x}\n")
    with pytest.raises(InventoryFileError) as exc:
        load_hosts(str(path))
    texts = [p.format()[len(str(path)) + 1:] for p in exc.value.problems]
    assert texts[0] == '1: timeout: \'soon\' is not a duration (use a duration such as "15m", "30s", "1h30m", or a ' \
                       'number of seconds)'
    assert texts[1:] == [
        "3: hosts[0].url: is not an API URL (give http(s)://HOST:PORT of the host's `run --api`, e.g. "
        "http://10.0.0.5:8090)",
        "4: hosts[1].name: must be lowercase letters, digits and '-' (at most 63), e.g. gpu-a100-01",
        "4: hosts[1].token_fil: unknown field `token_fil` (did you mean `token_file`?)"]
    path.write_text("hosts:\n  - {name: a, url: 'http://127.0.0.1:1', token_file: nope}\n"
                    "  - {name: a, url: 'http://127.0.0.1:2'}\n")
    with pytest.raises(InventoryFileError) as exc:
        load_hosts(str(path))
    assert [p.format() for p in exc.value.problems] == [
        f"{path}:2: hosts[0].token_file: {tmp_path}/nope: cannot be read: No such file or directory (check the "
        "path and its permissions)",
        f"{path}:3: hosts[1].name: host 'a' is listed twice (give each host its own name)"]


def test_every_host_asked_at_once_a_hung_or_closed_host_is_one_row(tmp_path, servers):
    hang = threading.Event()
    ok_url, seen = servers(A, [model("chat", A), model("embed", B)], pending={"embed": "restart"})
    slow_url, _ = servers(A, [], hang=hang)
    slow2_url, _ = servers(A, [], hang=hang)
    closed = f"http://127.0.0.1:{free_port()}"
    hosts, timeout = load_hosts(hosts_yaml(tmp_path, [("ok", ok_url), ("slow", slow_url), ("slow2", slow2_url),
                                                      ("gone", closed)], timeout="1s"))
    assert [h.token for h in hosts] == ["tok"] * 4 and timeout == 1.0
    began = time.monotonic()
    fleet = ask_hosts(hosts, timeout)
    assert time.monotonic() - began < 1.9  # two hung hosts of 1s each, asked concurrently
    rows = {h.name: h for h in fleet.hosts}
    assert [h.name for h in fleet.hosts] == ["ok", "slow", "slow2", "gone"]
    assert rows["slow"].error == "unreachable: no answer within 1s"
    assert rows["gone"].error.startswith("unreachable: ConnectError")
    assert rows["ok"].error is None and rows["ok"].serving == A and rows["ok"].pending == {"embed": "restart"}
    assert set(seen) == {"Bearer tok"}
    assert serves_commit(fleet, A[:7]) == [
        "ok/embed: not converged yet: its plan would restart it",
        "slow: unreachable: no answer within 1s", "slow2: unreachable: no answer within 1s",
        rows["gone"].error.join(["gone: ", ""])]


def test_cli_table_json_and_commit_check(cli, tmp_path, servers):
    refused = {"outcome": "refused", "old": A, "new": A, "fetched": B, "reason": "unsigned",
               "error": f"commit {B[:12]} is not signed (source.verify is set); the last verified commit stays"}
    one, _ = servers(A, [model("chat", A)])
    two, _ = servers(A, [model("chat", A), model("embed", A, "Stopped")], last_poll=refused)
    local, _ = servers(None, [model("chat", "c" * 40)])
    bad_token, _ = servers(A, [], token="other")
    path = hosts_yaml(tmp_path, [("one", one), ("two", two)])
    r = cli("fleet", "status", "--hosts", path, "--commit", A[:7])
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "HOST  SERVES        MODEL  STATE    FROM          NOTE",
        "one   aaaaaaaaaaaa  chat   Ready    aaaaaaaaaaaa",
        "two   aaaaaaaaaaaa  chat   Ready    aaaaaaaaaaaa",
        "two   aaaaaaaaaaaa  embed  Stopped  aaaaaaaaaaaa",
        f"two: refused bbbbbbbbbbbb: commit {B[:12]} is not signed (source.verify is set); the last verified "
        "commit stays",
        "commit aaaaaaa serves on all 2 host(s)"]
    assert "tok" not in r.out + r.err
    path = hosts_yaml(tmp_path, [("one", one), ("local", local), ("locked", bad_token)])
    r = cli("fleet", "status", "--hosts", path, "--commit", B[:7])
    assert r.code == 3
    assert r.err.splitlines() == [
        "not serving bbbbbbb: one: serves aaaaaaaaaaaa",
        "not serving bbbbbbb: local: serves a local manifests dir, not a git source",
        "not serving bbbbbbb: locked: HTTP 401: the token was refused (check token_file against the host's "
        "api.token_file)"]
    r = cli("fleet", "status", "--hosts", path, "-o", "json")
    assert r.code == 0
    data = r.json()
    assert [(h["host"], h["serving"], h["error"] is None) for h in data["hosts"]] == [
        ("one", A, True), ("local", None, True), ("locked", None, False)]
    assert data["hosts"][1]["models"] == [{"name": "chat", "state": "Ready", "commit": "c" * 40, "pending": None}]
    assert cli("fleet", "status", "--hosts", path, "--commit", "xyz").code == 2
    assert cli("fleet", "status", "--hosts", str(tmp_path / "missing.yaml")).code == 1
