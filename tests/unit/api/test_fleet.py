"""GET /api/management/fleet (api/fleet.py, issue #24 item 7) on an in-process daemon: 404 without
`fleet.hosts`; the hosts of the config's hosts.yaml (relative to the config) asked over real loopback HTTP
in a worker thread, a hung host bounded by the file's timeout and a closed one a row with the reason; the
commit most hosts serve and whether it serves everywhere; a hosts file with errors is shown as problems;
one collection answers the requests of FRESH seconds; tokens never in the answer."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.unit.reconciler.test_fleet_status import A, B, free_port, host_api, hosts_yaml, model
from xgen_declare.api.fleet import FleetAsker
from xgen_declare.config import Fleet

P = "/api/management"


@pytest.fixture
def servers():
    started, hangs = [], []

    def start(*args, **kw):
        server, seen = host_api(*args, **kw)
        started.append(server)
        if kw.get("hang"):
            hangs.append(kw["hang"])
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield start
    for e in hangs:
        e.set()
    for s in started:
        s.shutdown()
        s.server_close()


def configure(api, hosts: str | None) -> None:
    api.ctx.env.config.fleet = Fleet(hosts=hosts)


def test_without_fleet_hosts_the_route_answers_404(api):
    r = api.client.get(P + "/fleet")
    assert (r.status_code, r.json()["detail"]) == (404, "no fleet is configured: set `fleet: {hosts: hosts.yaml}` in "
                                                        "the daemon's config (the file `xgen-declare fleet status "
                                                        "--hosts` reads) to use this endpoint")


def test_every_host_a_row_and_the_commit_most_serve(api, servers):
    one, seen = servers(A, [model("chat", A), model("embed", B)])
    two, _ = servers(A, [model("chat", A)], pending={"chat": "restart"})
    three, _ = servers(B, [model("chat", B)])
    closed = f"http://127.0.0.1:{free_port()}"
    hosts_yaml(api.manifests, [("one", one), ("two", two), ("three", three), ("gone", closed)])
    configure(api, "hosts.yaml")  # relative to the config (api.manifests/xgen-declare.yaml)
    r = api.client.get(P + "/fleet")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hosts_file"] == "hosts.yaml"  # scrubbed: relative to the manifests dir
    assert [(h["host"], h["serving"], h["error"]) for h in body["hosts"][:3]] == [
        ("one", A, None), ("two", A, None), ("three", B, None)]
    assert body["hosts"][0]["models"] == [{"name": "chat", "state": "Ready", "commit": A, "pending": None},
                                         {"name": "embed", "state": "Ready", "commit": B, "pending": None}]
    assert body["hosts"][1]["models"][0]["pending"] == "restart"
    gone = body["hosts"][3]
    assert gone["host"] == "gone" and gone["error"].startswith("unreachable: ConnectError") and gone["models"] == []
    assert (body["commit"], body["everywhere"], body["problems"]) == (A, False, [])
    assert body["missing"] == ["two/chat: not converged yet: its plan would restart it",
                               f"three: serves {B[:12]}", f"gone: {gone['error']}"]
    assert set(seen) == {"Bearer tok"} and "tok" not in r.text.replace("token", "")


def test_commit_serves_everywhere(api, servers, tmp_path):
    one, _ = servers(A, [model("chat", A)])
    two, _ = servers(A, [model("chat", A), model("embed", A, "Stopped")])
    configure(api, hosts_yaml(tmp_path, [("one", one), ("two", two)]))
    body = api.client.get(P + "/fleet").json()
    assert (body["commit"], body["everywhere"], body["missing"]) == (A, True, [])
    assert [h["host"] for h in body["hosts"]] == ["one", "two"]


def test_a_hung_host_is_bounded_by_the_files_timeout(api, servers, tmp_path):
    hang = threading.Event()
    ok, _ = servers(A, [model("chat", A)])
    slow, _ = servers(A, [], hang=hang)
    configure(api, hosts_yaml(tmp_path, [("ok", ok), ("slow", slow)], timeout="0.5s"))
    began = time.monotonic()
    body = api.client.get(P + "/fleet").json()
    assert time.monotonic() - began < 3
    assert [(h["host"], h["error"]) for h in body["hosts"]] == [("ok", None),
                                                                ("slow", "unreachable: no answer within 0.5s")]
    assert api.client.get(P + "/models").status_code == 200


def test_a_hosts_file_with_errors_is_shown_as_problems(api, tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text("hosts:\n  - {name: a, url: 'ftp://x'}\n")
    configure(api, str(path))
    r = api.client.get(P + "/fleet")
    assert r.status_code == 200
    assert r.json()["hosts"] == [] and r.json()["problems"] == [
        f"{path}:2: hosts[0].url: is not an API URL (give http(s)://HOST:PORT of the host's `run --api`, e.g. "
        "http://10.0.0.5:8090)"]
    configure(api, str(tmp_path / "missing.yaml"))
    problems = api.client.get(P + "/fleet").json()["problems"]
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'missing.yaml'}") and "No such file" in \
        problems[0], problems


def test_one_collection_answers_the_requests_of_fresh_seconds(servers, tmp_path):
    url, seen = servers(A, [model("chat", A)])
    path = hosts_yaml(tmp_path, [("one", url)])
    now = [100.0]
    asker = FleetAsker(clock=lambda: now[0], wall=lambda: 1.0e9)

    async def scenario():
        first, second = await asyncio.gather(asker.ask(path), asker.ask(path))  # the second waits for the first
        assert second is first and len(seen) == 3  # models, source, plan: asked once
        now[0] += 1.0
        assert await asker.ask(path) is first and len(seen) == 3
        now[0] += 1.5
        again = await asker.ask(path)
        assert again is not first and again["hosts"] == first["hosts"] and len(seen) == 6

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_the_config_key_is_validated_with_file_line_and_field(tmp_path):
    from xgen_declare.config import load_config
    from xgen_declare.errors import ConfigError

    path = tmp_path / "xgen-declare.yaml"
    path.write_text("fleet:\n  host: hosts.yaml\n")
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    assert [p.format() for p in exc.value.problems] == [
        f"{path}:2: fleet.host: unknown field `host` (did you mean `hosts`?)"]
    path.write_text("fleet: {hosts: fleet/hosts.yaml}\n")
    config = load_config(str(path))
    assert config.resolve(config.fleet.hosts) == str(tmp_path / "fleet" / "hosts.yaml")
    assert load_config(None).fleet.hosts is None
