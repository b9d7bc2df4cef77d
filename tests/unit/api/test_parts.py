"""Pure parts of the API: bind/token rules, scrubbing, redaction, endpoints, the event bus, the events CLI."""

from __future__ import annotations

import asyncio

import pytest

from xgen_declare.api.declare import parse_load_body
from xgen_declare.api.events import EventBus, EventFeeder
from xgen_declare.http.security import (ApiProblem, ApiSetupError, Scrubber, check_bind, host_of, is_loopback, load_token, token_ok)
from xgen_declare.api.views import advertised_endpoint, redact_argv
from xgen_declare.cli.events import format_event, read_events
from xgen_declare.config import Api, Config
from xgen_declare.states import State


def test_public_bind_needs_a_token():
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("localhost", None)
    with pytest.raises(ApiSetupError, match="without a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t")
    assert not is_loopback("192.168.1.2") and is_loopback("127.0.0.2")


def test_token_from_env_or_file(tmp_path):
    cfg = Config()
    assert load_token(Api(), cfg, {}) is None
    assert load_token(Api(), cfg, {"XGEN_API_TOKEN": " abc \n"}) == "abc"
    (tmp_path / "tok").write_text("filetoken\n")
    cfg.file = str(tmp_path / "xgen-declare.yaml")
    assert load_token(Api(token_file="tok"), cfg, {}) == "filetoken"
    (tmp_path / "empty").write_text("")
    with pytest.raises(ApiSetupError, match="is empty"):
        load_token(Api(token_file="empty"), cfg, {})
    with pytest.raises(ApiSetupError, match="missing: cannot be read: No such file or directory"):
        load_token(Api(token_file="missing"), cfg, {})
    assert token_ok("Bearer abc", "abc") and token_ok("bearer abc", "abc")
    assert not token_ok("Basic abc", "abc") and not token_ok(None, "abc") and not token_ok("Bearer abcd", "abc")


def test_host_of():
    assert host_of("Example.org:8000") == "example.org"
    assert host_of("[::1]:8000") == "::1"
    assert host_of("127.0.0.1") == "127.0.0.1"


def test_scrubber_and_redaction(tmp_path):
    s = Scrubber([(str(tmp_path / "m"), ""), (str(tmp_path / "state"), "$STATE_DIR/")])
    assert s.text(f"{tmp_path}/m/a.yaml:3: bad; log {tmp_path}/state/logs/a.log") == \
        "a.yaml:3: bad; log $STATE_DIR/logs/a.log"
    assert s.json({"x": [f"{tmp_path}/m/b.yaml"], "n": 1}) == {"x": ["b.yaml"], "n": 1}
    assert redact_argv(["srv", "--api-key", "k", "--port", "1", "--token=t", "--hf_token", "h"]) == \
        ["srv", "--api-key", "***", "--port", "1", "--token=***", "--hf_token", "***"]


def test_advertised_endpoint():
    assert advertised_endpoint("127.0.0.1", 8001, "http://127.0.0.1:8001/v1", "gpu1", "x") == "http://127.0.0.1:8001/v1"
    assert advertised_endpoint("0.0.0.0", 8001, "http://0.0.0.0:8001/v1", "gpu1.lan", "x") == "http://gpu1.lan:8001/v1"
    assert advertised_endpoint("0.0.0.0", 8001, None, None, "localhost") == "http://localhost:8001/v1"


def test_parse_load_body_names():
    assert parse_load_body({"model_path": "/x/Qwen3-8B.Q4_K_M.gguf"}, Api())[0] == "qwen3-8b-q4-k-m"
    hub = Api(allowed_sources=["hf://*"])  # a hub id is fetched by the store: refused unless allowed (issue 23)
    assert parse_load_body({"model_path": "meta-llama/Llama-3.3-70B-Instruct"}, hub)[0] == "llama-3-3-70b-instruct"
    name, spec = parse_load_body({"name": "a", "model_path": "./m.gguf", "env": {}}, Api())
    assert (name, spec["model_path"]) == ("a", "../m.gguf")  # empty exec fields are fine
    assert parse_load_body({"model_path": "org/model"}, hub)[1]["model_path"] == "org/model"
    with pytest.raises(ApiProblem) as exc:
        parse_load_body({"model_path": "/m.gguf", "binary": "/bin/sh"}, Api())
    assert exc.value.status == 403


def test_bus_and_feeder():
    bus = EventBus(size=3)
    feeder = EventFeeder(bus, Scrubber([]))
    feeder.on_transition("a", State.PENDING, State.STARTING, "new model", {"restarts": 0, "pid": 1})
    feeder.on_transition("a", State.STARTING, State.CRASH_LOOP_BACK_OFF, "exit", {"restarts": 0, "last_error": "boom"})
    feeder.on_transition("a", State.CRASH_LOOP_BACK_OFF, State.STARTING, "back-off", {"restarts": 1, "pid": 2})
    types = [(e.type, e.data.get("new")) for e in bus.since(0)]
    assert types == [("error", None), ("state", "Starting"), ("restart", None)]  # a ring of 3
    assert bus.last_id == 5

    async def waiting():
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: bus.publish("state", model="b"))
        return await bus.wait(bus.last_id, 2)

    got = asyncio.run(waiting())
    assert [e.data["model"] for e in got] == ["b"]
    assert asyncio.run(bus.wait(bus.last_id, 0.05)) == []


def test_events_cli_formatting():
    lines = ["retry: 2000", ": comment", "", "id: 1", "event: state",
             'data: {"id": 1, "type": "state", "time": 0, "model": "a", "old": "Pending", "new": "Starting", '
             '"reason": "new model"}', ""]
    evs = list(read_events(lines))
    assert len(evs) == 1
    assert format_event(evs[0]).endswith("a: Pending -> Starting (new model)")
    assert format_event({"type": "restart", "model": "a", "restarts": 2, "time": 0}).endswith("a: restart #2")


def test_rollout_events_are_one_line_each():
    base = {"model": "a", "time": 0}
    assert format_event({**base, "type": "rollout_started", "from_hash": "h1", "to_hash": "h2"}).endswith(
        "a: rollout started: h1 -> h2")
    assert format_event({**base, "type": "rollout_failed", "from_hash": "h1", "to_hash": "h2",
                         "error": "exited with code 1 during start"}).endswith(
        "a: rollout failed: h1 -> h2: exited with code 1 during start")
    assert format_event({**base, "type": "rolled_back", "to_hash": "h1", "failed_hash": "h2"}).endswith(
        "a: rolled back to h1 (h2 failed)")
