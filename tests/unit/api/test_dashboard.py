"""The dashboard's server side through a TestClient (no backend binary: models end Blocked): the files
and their Content-Security-Policy, the restart/down/up verbs (token, Origin), model detail (secrets
masked), the log tail and its stream, the ledger and the router's figures. The page itself is tested
in a real browser (tests/integration/test_dashboard.py)."""

from __future__ import annotations

import json
import os
import re
import threading
from types import SimpleNamespace

from xgen_declare.api import ui
from xgen_declare.api.dashboard import CHUNK, ledger_json, read_from
from xgen_declare.placement.ledger import GIB, Device, Entry, Ledger

P = "/api/management"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def test_root_redirects_and_files_carry_a_strict_csp(api):
    r = api.client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/ui/")
    r = api.client.get("/ui/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="app.js"></script>' in r.text
    js = api.client.get("/ui/app.js")
    assert js.headers["content-type"] == "text/javascript; charset=utf-8" and js.headers["content-security-policy"] == CSP
    assert api.client.get("/ui/dom.js").status_code == 200
    for bad in ("/ui/nope.js", "/ui/..%2Fapp.py", "/ui/%2e%2e/app.py"):
        assert api.client.get(bad).status_code == 404, bad


def test_assets_have_no_inline_code_and_never_write_html():
    files = {p.name: p.read_text() for p in ui.UI_DIR.iterdir()}
    html = files["index.html"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and not re.search(r"\sstyle=", html), "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for name, text in files.items():
        if name.endswith(".js"):
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
                assert sink not in text, f"{name} uses {sink}"
    assert ui.page_weight() <= 300 * 1024


def test_verbs_down_up_restart(api):
    api.hand("m1.yaml", "m1", backend="llama-server-cpu")
    api.client.post(P + "/reconcile")
    assert api.client.get(P + "/models/m1").json()["state"] == "Blocked"
    r = api.client.post(P + "/models/m1/down?wait=5")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "model": "m1", "action": "down", "state": "Stopped", "held": True}
    r = api.client.post(P + "/models/m1/up?wait=5")
    assert r.json() == {"status": "success", "model": "m1", "action": "up", "state": "Blocked", "held": False}
    r = api.client.post(P + "/models/m1/restart?wait=5")
    assert (r.status_code, r.json()["state"]) == (200, "Blocked")
    r = api.client.post(P + "/models/zz/restart")
    assert r.status_code == 404 and r.json()["detail"] == "no model 'zz' (known: m1)"
    r = api.client.post(P + "/models/m1/explode")
    assert r.status_code == 404 and r.json()["detail"] == "no action 'explode'; use one of: restart, down, up"
    r = api.client.post(P + "/models/m1/down", headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["detail"] == "cross-origin write refused"
    assert api.client.get(P + "/models/m1").json()["held"] is False


def test_verbs_need_the_token(api_token):
    api_token.hand("m1.yaml", "m1", backend="llama-server-cpu")
    c = api_token.client
    c.post(P + "/reconcile", headers={"authorization": "Bearer s3cret"})
    r = c.post(P + "/models/m1/down")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"] == ("this endpoint changes state and needs `Authorization: Bearer <token>` (the token "
                                  "of api.token_file / XGEN_API_TOKEN)")
    assert c.post(P + "/models/m1/down", headers={"authorization": "Bearer nope"}).status_code == 401
    assert c.get(P + "/models/m1").json()["held"] is False
    r = c.post(P + "/models/m1/down?wait=5", headers={"authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["held"] is True


def test_detail_masks_secrets_and_keeps_markup_as_data(api):
    xss = "<img src=x onerror=alert(1)>"
    api.hand("d.yaml", "d", backend="llama-server-cpu", alias=["<script>alert(2)</script>"],
             env={"HF_TOKEN": "hf-secret", "MODE": "fast"}, extra_args=["--api-key", "k-secret"])
    text = (api.manifests / "d.yaml").read_text().replace("metadata:\n  name: d\n",
                                                          f"metadata:\n  name: d\n  labels: {{team: {json.dumps(xss)}}}\n")
    (api.manifests / "d.yaml").write_text(text)
    api.client.post(P + "/reconcile")
    r = api.client.get(P + "/models/d/detail")
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["labels"], d["alias"], d["file"], d["activation"]) == ({"team": xss}, ["<script>alert(2)</script>"],
                                                                     "d.yaml", "always")
    assert d["rendered"]["env"] == {"HF_TOKEN": "***", "MODE": "fast"}
    argv = d["rendered"]["argv"]
    assert argv[argv.index("--api-key") + 1] == "***" and "k-secret" not in r.text and "hf-secret" not in r.text
    assert d["router"]["requests"] == {} and d["problems"] == []
    assert api.client.get(P + "/models/nope/detail").status_code == 404


def test_detail_of_an_invalid_manifest_lists_its_problems(api):
    (api.manifests / "bad.yaml").write_text("apiVersion: xgen/v1\nkind: Model\nmetadata: {name: bad}\n"
                                            "spec: {model_path: /m/x.gguf, ctx_sise: 1}\n")
    d = api.client.get(P + "/models/bad/detail").json()
    assert d["rendered"] is None
    assert d["problems"] == ["bad.yaml:4: spec.ctx_sise: unknown field `ctx_sise` (did you mean `ctx_size`?)"]


def test_log_tail_and_stream(api):
    log = api.ctx.env.store.log_path("m1")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"one\ntwo <script>x</script>\nthree {api.manifests}/m1.yaml\npartial")
    r = api.client.get(P + "/models/m1/log?lines=2").json()
    assert r == {"model": "m1", "lines": ["two <script>x</script>", "three m1.yaml"],
                 "offset": log.stat().st_size - len("partial"), "problems": []}
    offset = len("one\n")
    r = api.client.get(P + f"/models/m1/log/stream?offset={offset}&timeout=0.5")
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(x[6:]) for x in r.text.splitlines() if x.startswith("data: ")]
    assert events == [{"lines": ["two <script>x</script>", "three m1.yaml"]}]
    assert f"id: {log.stat().st_size - len('partial')}\n" in r.text
    r = api.client.get(P + "/models/m1/log/stream?lines=1&timeout=0.3")
    assert [json.loads(x[6:]) for x in r.text.splitlines() if x.startswith("data: ")][0] == {"lines": ["three m1.yaml"]}
    assert api.client.get(P + "/models/..%2Fx/log").status_code in (404, 422)


def test_the_log_endpoints_never_serve_a_file_through_a_link(api, tmp_path):
    """#21 finding 13: a link planted at logs/NAME.log is refused, its target never served."""
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    log = api.ctx.env.store.log_path("m1")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.symlink_to(secret)
    r = api.client.get(P + "/models/m1/log")
    assert r.status_code == 200 and "root:" not in r.text
    assert r.json() == {"model": "m1", "lines": [], "offset": 0, "problems": [
        "$STATE_DIR/logs/m1.log: is a symlink, and this file may not be one (remove the link; xgen-declare "
        "writes this file itself)"]}
    r = api.client.get(P + "/models/m1/log/stream?offset=0&timeout=0.3")
    assert r.status_code == 200 and "root:" not in r.text
    r = api.client.get(P + "/models/m1/log/stream?timeout=0.3")
    assert r.status_code == 200 and "root:" not in r.text


def test_the_log_endpoints_report_a_corrupt_record_and_go_on(api):
    """#21 finding 15: a corrupt record is a problem in a 200 answer, never a 500."""
    store = api.ctx.env.store
    store.models_dir.mkdir(parents=True, exist_ok=True)
    (store.models_dir / "m1.json").write_text("[1]")
    store.log_path("m1").parent.mkdir(parents=True, exist_ok=True)
    store.log_path("m1").write_text("one\n")
    r = api.client.get(P + "/models/m1/log")
    assert r.status_code == 200
    assert r.json() == {"model": "m1", "lines": ["one"], "offset": 4, "problems": [
        "corrupt record $STATE_DIR/models/m1.json: not a JSON object; fix: remove it (xgen-declare writes it again)"]}
    r = api.client.get(P + "/models/m1/log/stream?timeout=0.3")
    assert r.status_code == 200
    assert [json.loads(x[6:]) for x in r.text.splitlines() if x.startswith("data: ")][0] == {"lines": ["one"]}


def test_read_from_follows_rotation_and_waits_for_whole_lines(tmp_path):
    f = tmp_path / "a.log"
    f.write_text("a\nb\nhalf")
    assert read_from(f, 0) == (["a", "b"], 4)
    assert read_from(f, 4) == ([], 4)
    f.write_text("new\n")  # copy-truncate rotation: the file is shorter than the offset
    assert read_from(f, 8) == (["new"], 4)
    assert read_from(tmp_path / "missing.log", 3) == ([], 3)


def test_read_from_streams_a_line_longer_than_a_read_in_pieces(tmp_path):
    """Issue 21 finding 19: a line longer than CHUNK stopped the live log for good."""
    f = tmp_path / "a.log"
    long = "é" + "x" * (CHUNK * 2) + "ü"  # multi-byte characters at both ends of the cuts' range
    f.write_bytes(f"first\n{long}\nafter\n".encode())
    got, offset, calls = [], 0, 0
    while calls < 10:
        lines, offset = read_from(f, offset)
        calls += 1
        got += lines
        if "after" in got:
            break
    assert got[0] == "first" and got[-1] == "after"
    assert "".join(got[1:-1]) == long  # nothing lost, no character cut in two
    assert all(len(x.encode()) <= CHUNK for x in got) and len(got) >= 4
    assert offset == f.stat().st_size


def test_read_from_waits_for_the_rest_of_a_short_unfinished_line(tmp_path):
    f = tmp_path / "a.log"
    f.write_bytes(b"x" * (CHUNK - 1))
    assert read_from(f, 0) == ([], 0)
    f.write_bytes("x".encode() * (CHUNK - 2) + "é".encode())  # CHUNK bytes ending in a whole character
    assert read_from(f, 0) == (["x" * (CHUNK - 2) + "é"], CHUNK)
    f.write_bytes(b"x" * (CHUNK - 1) + "é".encode())  # its 2 bytes straddle the cut: it waits for the next piece
    assert read_from(f, 0) == (["x" * (CHUNK - 1)], CHUNK - 1)


def test_the_stream_goes_on_after_a_long_line(api):
    log = api.ctx.env.store.log_path("m1")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("a\n" + "y" * (CHUNK * 3) + "\nlast line\n")
    r = api.client.get(P + "/models/m1/log/stream?offset=0&timeout=1")
    lines = [x for e in r.text.splitlines() if e.startswith("data: ") for x in json.loads(e[6:])["lines"]]
    assert lines[0] == "a" and lines[-1] == "last line" and "".join(lines[1:-1]) == "y" * (CHUNK * 3)


def test_ledger_json_devices_pool_overcommit_and_blocked():
    ledger = Ledger(devices=[Device("GPU0", 0, 16384, 16000, name="RX 6800"), Device("host", None, 65536, 60000)],
                    capacity={"GPU0": 10 * GIB, "host": 50 * GIB},
                    entries=[Entry("a", {"GPU0": 11 * GIB}, "measured"),
                             Entry("b", {"GPU0": 4 * GIB}, "reserved", blocked="overcommit: b: 4.0 GiB on GPU0 + a")],
                    margin_mib=6000)
    out = ledger_json(ledger, None)
    assert out["devices"][0] == {"device": "GPU0", "gpu": 0, "name": "RX 6800", "integrated": False, "total_mib": 16384,
                                 "free_mib": 16000, "usable_mib": 10240.0, "used_mib": 11264.0, "shared_pool": False,
                                 "overcommitted": True}
    assert out["devices"][1]["overcommitted"] is False and out["devices"][1]["used_mib"] == 0.0
    assert (out["computed"], out["margin_mib"], out["blocked"]) == (True, 6000, {"b": "overcommit: b: 4.0 GiB on GPU0 + a"})
    igpu = Ledger(devices=[Device("GPU0", 0, 32768, 30000, integrated=True), Device("host", None, 65536, 60000)],
                  capacity={"GPU0": 30 * GIB, "host": 40 * GIB}, entries=[Entry("c", {"GPU0": 20 * GIB, "host": 25 * GIB})])
    pool = ledger_json(igpu, None)["devices"]
    assert [(d["shared_pool"], d["used_mib"], d["overcommitted"]) for d in pool] == [
        (True, 45 * 1024.0, True), (True, 45 * 1024.0, True)]


def test_ledger_endpoint_after_a_pass_and_without_one(api):
    api.client.post(P + "/reconcile")
    r = api.client.get(P + "/ledger").json()
    assert (r["computed"], [d["device"] for d in r["devices"]], r["blocked"]) == (True, ["host"], {})
    gpu = SimpleNamespace(index=1, name="RX 6800", integrated=False, memory_total_mib=16384, memory_free_mib=16000)
    assert ledger_json(None, SimpleNamespace(gpus=[gpu]))["devices"] == [
        {"device": "GPU1", "gpu": 1, "name": "RX 6800", "integrated": False, "total_mib": 16384, "free_mib": 16000,
         "usable_mib": None, "used_mib": None, "shared_pool": False, "overcommitted": False}]
    assert ledger_json(None, None) == {"computed": False, "margin_mib": None, "devices": [], "blocked": {},
                                       "notes": [], "warnings": {}}


def test_router_figures(api):
    m = api.ctx.router.metrics
    m.requests.labels(model="m1", code="200").inc()
    m.requests.labels(model="m1", code="503").inc(2)
    m.ttfb.labels(model="m1").observe(0.2)
    m.ttfb.labels(model="m1").observe(0.4)
    m.cold_start.labels(model="m1").observe(3.0)
    m.in_flight.labels(model="m1").inc()
    figures = api.client.get(P + "/router").json()["models"]["m1"]
    assert figures == {"requests": {"200": 1, "503": 2}, "in_flight": 1, "ttfb_count": 2, "ttfb_seconds_avg": 0.3,
                       "cold_starts": 1, "cold_start_seconds_avg": 3.0, "evictions": 0, "idle_stops": 0}


def _unblock(fifo) -> None:
    """Let an open() stuck on the FIFO (the old code's) return: a writer comes and goes."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def test_a_fifo_in_place_of_the_log_is_refused_not_waited_on(api):
    """A FIFO planted as a model's log blocked open() for ever: a worker thread per request (#21)."""
    log = api.ctx.env.store.log_path("m1")
    log.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(log)
    answers: dict = {}

    def ask():
        answers["tail"] = api.client.get(P + "/models/m1/log")
        answers["stream"] = api.client.get(P + "/models/m1/log/stream?offset=0&timeout=1")

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    asker.join(10)
    while asker.is_alive():  # the old code: unblock it so that the suite goes on, then fail
        _unblock(log)
        asker.join(1)
    assert "stream" in answers
    assert answers["tail"].status_code == 200
    assert answers["tail"].json() == {"model": "m1", "lines": [], "offset": 0, "problems": [
        "$STATE_DIR/logs/m1.log: is a FIFO (named pipe), not a regular file (remove it; xgen-declare writes this "
        "file itself)"]}
    detail = ("the model's log $STATE_DIR/logs/m1.log is a FIFO (named pipe), not a regular file; remove it (the "
              "daemon writes it again when the model starts)")
    assert f'event: refused\ndata: {json.dumps({"status": "error", "detail": detail})}\n\n' in answers["stream"].text


def test_views_say_whether_the_page_shows_the_source_panel_and_the_fleet_tab(api, tmp_path):
    from xgen_declare.config import Fleet
    from xgen_declare.reconciler.gitpoll import GitPoll
    from xgen_declare.sources.spec import GitSpec

    assert api.client.get(P + "/views").json() == {"source": False, "fleet": False}
    api.ctx.env.config.fleet = Fleet(hosts="hosts.yaml")
    api.daemon.source = GitPoll(GitSpec(url="file:///srv/git/llm.git", ref="main"), str(tmp_path / "state"))
    try:
        assert api.client.get(P + "/views").json() == {"source": True, "fleet": True}
    finally:
        api.daemon.source = None
