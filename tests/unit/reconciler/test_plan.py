"""The planner with plain data: no processes, no files."""

from __future__ import annotations

from xgen_declare.reconciler.plan import Seen, Want, argv_changes, plan
from xgen_declare.states import State

ARGV = ("llama-server", "--model", "/m/a.gguf", "--port", "8001", "--ctx-size", "4096")


def want(name="a", argv=ARGV, h="h1", **kw):
    return Want(name=name, spec_hash=h, argv=argv, port=8001, binary_id="bin1", **kw)


def seen(name="a", argv=ARGV, h="h1", state=State.READY, running=True, **kw):
    kw.setdefault("binary_id", "bin1")
    return Seen(name=name, state=state, running=running, spec_hash=h, argv=argv, port=8001, **kw)


def kinds(p):
    return {a.name: a.kind for a in p.actions}


def test_unchanged_is_kept():
    p = plan({"a": want()}, {"a": seen()})
    assert [a.format() for a in p.actions] == ["keep     a: unchanged"]
    assert p.changes == []


def test_new_model_starts():
    assert plan({"a": want()}, {}).actions[0].format() == "start    a: new model"


def test_argv_change_restarts_with_reason():
    new = ARGV[:-1] + ("8192",)
    p = plan({"a": want(argv=new, h="h2")}, {"a": seen()})
    assert p.actions[0].format() == "restart  a: argv changed: --ctx-size 4096 → 8192"


def test_only_changed_model_restarts_among_many():
    wants = {n: want(n) for n in "abcde"}
    wants["c"] = want("c", argv=ARGV + ("--parallel", "4"), h="h2")
    p = plan(wants, {n: seen(n) for n in "abcde"})
    assert kinds(p) == {"a": "keep", "b": "keep", "c": "restart", "d": "keep", "e": "keep"}
    assert p.get("c").reason == "argv changed: added --parallel 4"


def test_binary_identity_change_restarts():
    p = plan({"a": want()}, {"a": seen(binary_id="bin0")})
    assert p.actions[0].kind == "restart"
    assert p.actions[0].reason == "binary changed: llama-server was replaced or upgraded"


def test_env_change_names_variable_not_value():
    p = plan({"a": want(h="h2", env_digest={"FOO": "x2"})}, {"a": seen(env_digest={"FOO": "x1"})})
    assert p.actions[0].reason == "env changed: FOO"


def test_removed_model_stops_and_stops_come_first():
    p = plan({"b": want("b")}, {"a": seen("a"), "b": seen("b", running=False, state=State.STOPPED)})
    assert [a.format() for a in p.actions] == ["stop     a: manifest removed", "start    b: not running"]
    assert p.actions[0].forget


def test_invalid_manifest_keeps_last_good_process():
    p = plan({}, {"a": seen()}, invalid={"a": "a.yaml:3: spec.ctx_size: bad"})
    a = p.actions[0]
    assert (a.kind, a.reason, a.manifest_error) == ("keep", "manifest invalid: keeping last good process",
                                                    "a.yaml:3: spec.ctx_size: bad")


def test_unparseable_file_never_prunes_its_models():
    p = plan({}, {"a": seen(file="/m/a.yaml"), "b": seen("b", file="/m/b.yaml")},
             broken_files={"/m/a.yaml": "a.yaml:2: syntax error"})
    assert kinds(p) == {"a": "keep", "b": "stop"}
    assert p.get("a").manifest_error == "a.yaml:2: syntax error"


def test_empty_dir_prunes_nothing_with_guard():
    """Issue 12 item 4: the kept model says why (plan; status through manifest_error)."""
    guard = "kept: the manifests directory is empty (reconciler.prune_empty is false)"
    p = plan({}, {"a": seen(), "b": seen("b", running=False, state=State.STOPPED)}, prune_guard=guard)
    assert [(a.format(), a.manifest_error) for a in p.actions] == [
        ("keep     a: kept: the manifests directory is empty (reconciler.prune_empty is false)", guard),
        ("keep     b: kept: the manifests directory is empty (reconciler.prune_empty is false)", None)]
    assert p.actions[0].log_line() == "a: kept: the manifests directory is empty (reconciler.prune_empty is false)"
    assert p.notes == []


def test_disabled_stops_running_model():
    assert plan({"a": want(enabled=False)}, {"a": seen()}).actions[0].format() == \
        "stop     a: disabled in the manifest (enabled: false)"


def test_hold_keeps_model_stopped_until_spec_changes():
    held = seen(running=False, state=State.STOPPED, held=True, held_hash="h1")
    assert plan({"a": want()}, {"a": held}).actions[0].kind == "keep"
    a = plan({"a": want(h="h2")}, {"a": held}).actions[0]
    assert (a.kind, a.release_hold) == ("start", True)


def test_blocked_model():
    a = plan({"a": want(blocked="binary 'x' not found")}, {}).actions[0]
    assert a.format() == "blocked  a: binary 'x' not found"


def test_blocked_change_keeps_running_process():
    a = plan({"a": want(h="h2", blocked="binary 'x' not found", argv=ARGV + ("-v",))}, {"a": seen()}).actions[0]
    assert a.kind == "blocked" and a.reason.endswith("keeping the running process")


def test_crash_loop_is_left_to_the_supervisor():
    a = plan({"a": want()}, {"a": seen(running=False, state=State.CRASH_LOOP_BACK_OFF)}).actions[0]
    assert a.kind == "keep"


def test_process_gone_while_unsupervised_restarts():
    a = plan({"a": want()}, {"a": seen(running=False, state=State.READY)}).actions[0]
    assert a.format() == "start    a: process gone (was Ready)"


def test_only_restricts_names():
    p = plan({"a": want(), "b": want("b")}, {}, only={"b"})
    assert [a.name for a in p.actions] == ["b"]


def test_argv_changes_positional_and_switches():
    assert argv_changes(["vllm", "serve", "m1", "--trust-remote-code"], ["vllm", "serve", "m2"]) == \
        ["argument 2 m1 → m2", "removed --trust-remote-code"]
    assert argv_changes(["x", "--n-gpu-layers", "-1"], ["x", "--n-gpu-layers", "20"]) == \
        ["--n-gpu-layers -1 → 20"]


def test_plan_is_deterministic_and_json():
    p = plan({"b": want("b"), "a": want("a")}, {})
    assert [a.name for a in p.actions] == ["a", "b"]
    assert p.to_json()["summary"] == "2 to start, 0 to restart, 0 to stop, 0 blocked, 0 unchanged"


def test_woken_on_demand_model_starts_with_its_reason():
    from xgen_declare.states import State

    p = plan({"a": want("a")}, {"a": seen("a", running=False, state=State.IDLE)})
    assert [(x.kind, x.name, x.reason) for x in p.actions] == [("start", "a", "on-demand: woken by a request")]


# ---- `down` / `up` / `restart` are plan inputs (requests), typed causes --------------------------

def test_down_is_a_planned_stop_that_records_a_hold():
    from xgen_declare.reconciler.plan import KEEP, STOP, Cause, Request

    a = plan({"a": want()}, {"a": seen()}, requests={"a": Request.DOWN}).get("a")
    assert (a.kind, a.reason, a.hold, a.cause) == (STOP, "`down`", True, Cause.REQUESTED)
    idle = plan({"a": want()}, {"a": seen(running=False, state=State.STOPPED)}, requests={"a": Request.DOWN}).get("a")
    assert (idle.kind, idle.hold) == (KEEP, True)
    bad = plan({}, {"a": seen()}, invalid={"a": "x.yaml:3: spec.port: bad"}, requests={"a": Request.DOWN}).get("a")
    assert (bad.kind, bad.hold, bad.manifest_error) == (STOP, True, "x.yaml:3: spec.port: bad")


def test_unload_is_a_plan_input_that_outranks_the_prune_guard_and_spares_a_declared_model():
    """Issue 22 item 4: the API's unload stops through the executor (it called the supervisor's stop
    after a pass whose plan kept the model); a model still declared, or merely invalid, is not touched."""
    from xgen_declare.reconciler.plan import KEEP, STOP, Cause, Request

    guard = "kept: the manifests directory is empty (reconciler.prune_empty is false)"
    gone = plan({}, {"a": seen(), "b": seen("b")}, prune_guard=guard, requests={"a": Request.UNLOAD})
    assert [(x.name, x.kind, x.reason, x.forget, x.cause) for x in gone.actions] == [
        ("a", STOP, "unloaded through the API", True, Cause.REQUESTED), ("b", KEEP, guard, False, Cause.PRUNE_GUARD)]
    assert plan({"a": want()}, {"a": seen()}, requests={"a": Request.UNLOAD}).get("a").kind == KEEP
    bad = plan({}, {"a": seen()}, invalid={"a": "x.yaml:3: spec.port: bad"}, requests={"a": Request.UNLOAD}).get("a")
    assert (bad.kind, bad.manifest_error) == (KEEP, "x.yaml:3: spec.port: bad")


def test_up_releases_the_hold_and_starts():
    from xgen_declare.reconciler.plan import START, Request

    held = seen(running=False, state=State.STOPPED, held=True, held_hash="h1")
    assert plan({"a": want()}, {"a": held}).get("a").reason.startswith("held by `down`")
    a = plan({"a": want()}, {"a": held}, requests={"a": Request.UP}).get("a")
    assert (a.kind, a.reason, a.release_hold) == (START, "`up`: hold released", True)


def test_restart_request_restarts_an_unchanged_model_and_retries_a_rolled_back_spec():
    from xgen_declare.reconciler.plan import KEEP, RESTART, START, Cause, Request

    a = plan({"a": want()}, {"a": seen()}, requests={"a": Request.RESTART}).get("a")
    assert (a.kind, a.reason, a.cause, a.retry) == (RESTART, "`restart`", Cause.REQUESTED, True)
    rolled = seen(h="h0", failed_hash="h1")  # running the last good spec h0; h1 failed
    assert plan({"a": want()}, {"a": rolled}).get("a").kind == KEEP
    assert plan({"a": want()}, {"a": rolled}, requests={"a": Request.RESTART}).get("a").kind == RESTART
    failed = seen(running=False, state=State.FAILED)
    assert plan({"a": want()}, {"a": failed}).get("a").kind == KEEP
    again = plan({"a": want()}, {"a": failed}, requests={"a": Request.RESTART}).get("a")
    assert (again.kind, again.retry) == (START, True)


def test_causes_are_data_the_executor_reads():
    from xgen_declare.reconciler.plan import Cause

    gone = plan({"a": want()}, {"a": seen(running=False, state=State.READY)}).get("a")
    assert gone.cause == Cause.PROCESS_GONE and gone.to_json()["cause"] == "process_gone"
    assert plan({"a": want(enabled=False)}, {"a": seen(running=False, state=State.STOPPED)}).get("a").cause \
        == Cause.DISABLED
