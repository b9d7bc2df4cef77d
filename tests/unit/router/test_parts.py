"""Pure parts of the router: the route table, activity tracking, the idle rules of the planner, the
manifest fields, the ledger's shortfall."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from xgen_declare.placement.ledger import Device, Entry, Ledger
from xgen_declare.placement.predict import MIB
from xgen_declare.reconciler.plan import KEEP, STOP, Seen, Want, plan
from xgen_declare.manifests.fields import parse_duration
from xgen_declare.manifests.request import ModelLoadRequest
from xgen_declare.router.activity import Tracker
from xgen_declare.router.ondemand import fmt_seconds, shortfall_mib
from xgen_declare.router.table import table_from_decls
from xgen_declare.states import State


def decl(name, **spec):
    return SimpleNamespace(name=name, spec=ModelLoadRequest(model_path=f"/m/{name}.gguf", **spec))


def test_table_resolves_names_then_aliases_and_reports_conflicts():
    t = table_from_decls([decl("b", alias=["shared", "a"]), decl("a", alias=["gpt", "shared"]),
                          decl("c", activation="on-demand", idle_timeout="15m")])
    assert t.resolve("a").name == "a" and t.resolve("gpt").name == "a" and t.resolve("shared").name == "a"
    assert t.resolve("nope") is None
    assert t.known() == ["a", "b", "c", "gpt", "shared"]
    assert t.conflicts == ["alias 'shared' is claimed by a and b: a answers",
                           "alias 'a' of b is the name of another model: ignored"]
    c = t.routes["c"]
    assert c.on_demand and c.idle_timeout == 900.0 and not t.routes["a"].on_demand


def test_table_routes_a_vllm_models_id_as_vllm_serves_it():
    """A client sending the HuggingFace id (what vLLM answers to by default) reaches the model; a name or
    an alias says it first; two models serving one id: the first by name answers, reported."""
    def vllm(name, model_path, **spec):
        return SimpleNamespace(name=name, file="/m/x.yaml", spec=ModelLoadRequest(model_path=model_path, **spec))

    t = table_from_decls([vllm("llama", "meta-llama/Llama-3.3-70B-Instruct", alias=["l3"]),
                          vllm("copy", "meta-llama/Llama-3.3-70B-Instruct"),
                          vllm("qwen", "Qwen/Qwen3-8B"), vllm("named", "org/taken", alias=["Qwen/Qwen3-8B"]),
                          vllm("local", "./dirs/tiny"), decl("gguf")])
    assert t.resolve("meta-llama/Llama-3.3-70B-Instruct").name == "copy"
    assert t.resolve("l3").name == "llama" and t.resolve("org/taken").name == "named"
    assert t.resolve("Qwen/Qwen3-8B").name == "named"      # the alias, not qwen's model id
    assert t.resolve("/m/dirs/tiny").name == "local"       # as on vLLM's argv: relative to the manifest
    assert t.resolve("/m/gguf.gguf") is None                # llama.cpp models: by name and alias only
    assert t.conflicts == ["model id 'meta-llama/Llama-3.3-70B-Instruct' is served by copy and llama: copy answers"]


def test_tracker_counts_queue_limit_and_lru():
    now = [100.0]
    t = Tracker(lambda: now[0])
    t.begin("a")
    now[0] = 101
    t.begin("b")
    t.end("b")
    assert t.in_flight("a") == 1 and t.in_flight("b") == 0
    assert t.lru(["b", "a", "never"]) == ["never", "a", "b"]
    assert t.try_wait("a", 2) and t.try_wait("a", 2) and not t.try_wait("a", 2)
    t.done_waiting("a")
    assert t.waiting("a") == 1
    now[0] = 111
    assert t.idle_seconds("b") == 10 and t.idle_seconds("fresh") == 0


def want(name, **kw):
    return Want(name=name, spec_hash="h", argv=("x",), port=1, **kw)


def seen(name, running, state=State.READY, **kw):
    return Seen(name=name, state=state, running=running, spec_hash="h", argv=("x",), port=1, **kw)


def test_plan_keeps_idle_models_stopped_and_stops_running_ones_with_the_reason():
    p = plan({"a": want("a", idle="on-demand: idle"), "b": want("b", idle="evicted for c"),
              "c": want("c")},
             {"b": seen("b", True), "c": seen("c", False, State.IDLE)})
    assert [(a.kind, a.name, a.reason, a.idle) for a in p.actions] == [
        (STOP, "b", "evicted for c", True), ("start", "c", "on-demand: woken by a request", False), (KEEP, "a", "on-demand: idle", True)]
    held = plan({"a": want("a", idle="x")}, {"a": seen("a", False, State.STOPPED, held=True, held_hash="h")})
    assert held.actions[0].reason.startswith("held by `down`")


def test_activation_fields_and_durations():
    assert [parse_duration(v) for v in ("15m", "1h30m", "30s", "2.5", 45)] == [900, 5400, 30, 2.5, 45]
    for bad, text in (("5 min", "'5 min' is not a duration"), ("0", "must be greater than 0"),
                      (True, "must be a duration")):
        with pytest.raises(ValueError, match=text):
            parse_duration(bad)
    assert ModelLoadRequest(model_path="a.gguf").activation == "always"
    with pytest.raises(ValidationError, match="idle_timeout: only applies to activation: on-demand"):
        ModelLoadRequest(model_path="a.gguf", idle_timeout="15m")
    with pytest.raises(ValidationError, match="Input should be 'always' or 'on-demand'"):
        ModelLoadRequest(model_path="a.gguf", activation="lazy")
    assert fmt_seconds(900) == "15m" and fmt_seconds(3600) == "1h" and fmt_seconds(1.5) == "1.5s"


def test_shortfall_names_the_device_and_the_missing_mib():
    ledger = Ledger(devices=[Device("GPU0", 0, 16384, 16000)], capacity={"GPU0": 10000 * MIB},
                    entries=[Entry("base", {"GPU0": 8192 * MIB}), Entry("huge", {"GPU0": 4915 * MIB}, blocked="x")])
    assert shortfall_mib(ledger, "huge") == {"GPU0": 3107.0}
    assert shortfall_mib(ledger, "base") == {} and shortfall_mib(None, "x") == {}


def test_router_events_read_well_in_the_cli():
    from xgen_declare.cli.events import format_event

    assert format_event({"type": "on_demand_start", "model": "b", "evicted": ["a"], "time": 0}).endswith(
        "b: on-demand start (evicted a)")
    assert format_event({"type": "idle_stop", "model": "b", "idle_seconds": 5.5, "idle_timeout": 5.0,
                         "time": 0}).endswith("b: idle stop: no request for 5.5s (idle_timeout 5s)")
    assert format_event({"type": "eviction", "model": "a", "to_make_room_for": "b", "time": 0}).endswith(
        "a: evicted to make room for b")


def _pass(models, *actions):
    from xgen_declare.reconciler.plan import Plan

    desired = SimpleNamespace(load=SimpleNamespace(models=models), here=models, elsewhere={})
    return SimpleNamespace(desired=desired, plan=Plan(list(actions)))


def test_a_model_whose_manifest_turns_invalid_keeps_its_route_and_aliases():
    from xgen_declare.reconciler.plan import Action
    from xgen_declare.router.ondemand import OnDemand

    od = OnDemand(Tracker(lambda: 0.0))
    od.on_pass(_pass([decl("a", alias=["gpt-a"]), decl("b")]))
    error = "a.yaml:7: spec.ctx_sise: unknown field `ctx_sise` (did you mean `ctx_size`?)"
    kept = Action(KEEP, "a", "manifest invalid: keeping last good process", manifest_error=error)
    od.on_pass(_pass([decl("b")], kept))
    route = od.table.resolve("gpt-a")
    assert (route.name, route.aliases, route.manifest_error) == ("a", ("gpt-a",), error)
    assert od.table.known() == ["a", "b", "gpt-a"]
    od.on_pass(_pass([decl("b", alias=["gpt-a"])], kept))  # the last good route stays; its alias is taken
    assert od.table.resolve("gpt-a").name == "a" and od.table.conflicts == [
        "alias 'gpt-a' is claimed by a and b: a answers"]
    od.on_pass(_pass([decl("a", alias=["new"]), decl("b")]))  # repaired: the new manifest's route
    assert od.table.resolve("new").manifest_error is None and od.table.resolve("gpt-a") is None
    od.on_pass(_pass([decl("b")], Action(STOP, "a", "manifest removed", forget=True)))
    assert od.table.resolve("a") is None
