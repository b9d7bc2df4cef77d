"""`spec.hosts` in the plan (issue 24 item 6), with plain data: a model not for this host is a keep-like line
naming the requirement that failed, never "manifest removed", never an error. A running one is stopped only
when its selector is not the one it started under (the manifest moved it); when only the host's labels
changed it keeps running."""

from __future__ import annotations

from xgen_declare.processes.settings import InPlace
from xgen_declare.reconciler.plan import KEEP, STOP, Cause, NotHere, Request, Seen, Want, plan
from xgen_declare.states import State

ARGV = ("llama-server", "--port", "8001")
AMD = NotHere("gpu.vendor In [amd] (this host: nvidia)", "gpu.vendor In [amd]")


def seen(running=True, hosts="gpu.vendor In [amd]", held=False, state=State.READY, settings=True):
    return Seen(name="a", state=state if running else State.STOPPED, running=running, spec_hash="h1", argv=ARGV,
                port=8001, binary_id="b", held=held, settings=InPlace(hosts=hosts) if settings else None)


def test_not_for_this_host_and_nothing_recorded_is_a_keep_line():
    p = plan({}, {}, elsewhere={"a": AMD})
    assert [a.format() for a in p.actions] == ["keep     a: not for this host: gpu.vendor In [amd] (this host: nvidia)"]
    assert p.actions[0].cause == Cause.NOT_HERE and not p.actions[0].forget
    assert p.summary() == "0 to start, 0 to restart, 0 to stop, 0 blocked, 0 unchanged, 1 not for this host"
    assert p.changes == []


def test_the_others_plan_as_usual_beside_it():
    w = Want(name="b", spec_hash="h", argv=ARGV, port=8002, binary_id="b")
    p = plan({"b": w}, {}, elsewhere={"a": AMD})
    assert [(a.kind, a.name) for a in p.actions] == [("start", "b"), ("keep", "a")]


def test_a_selector_that_moved_the_model_stops_it_and_forgets_it():
    # started with no selector (a record from before spec.hosts, or hosts omitted), now for AMD hosts only
    for recorded in (None, "gpu.vendor In [nvidia]"):
        a = plan({}, {"a": seen(hosts=recorded)}, elsewhere={"a": AMD}).actions[0]
        assert (a.kind, a.reason, a.forget, a.cause) == (STOP, "not for this host: gpu.vendor In [amd] (this host: "
                                                         "nvidia)", True, Cause.NOT_HERE)
    a = plan({}, {"a": seen(settings=False)}, elsewhere={"a": AMD}).actions[0]  # nothing recorded: moved
    assert a.kind == STOP


def test_labels_that_changed_under_the_same_selector_keep_it_running():
    a = plan({}, {"a": seen()}, elsewhere={"a": AMD}).actions[0]
    assert a.format() == ("keep     a: not for this host: gpu.vendor In [amd] (this host: nvidia); kept running: its "
                          "spec.hosts did not change, this host's labels did (run `xgen-declare down a` to stop it)")
    assert not a.forget


def test_a_record_that_is_not_running_is_forgotten_unless_held():
    a = plan({}, {"a": seen(running=False)}, elsewhere={"a": AMD}).actions[0]
    assert (a.kind, a.reason, a.forget) == (
        STOP, "not for this host: gpu.vendor In [amd] (this host: nvidia) (not running: forget it)", True)
    held = plan({}, {"a": seen(running=False, held=True)}, elsewhere={"a": AMD}).actions[0]
    assert (held.kind, held.reason, held.forget) == (
        KEEP, "not for this host: gpu.vendor In [amd] (this host: nvidia); held by `down`", False)


def test_down_and_unload_still_apply():
    down = plan({}, {"a": seen()}, elsewhere={"a": AMD}, requests={"a": Request.DOWN}).actions[0]
    assert (down.kind, down.hold) == (STOP, True)
    unload = plan({}, {"a": seen()}, elsewhere={"a": AMD}, requests={"a": Request.UNLOAD}).actions[0]
    assert (unload.kind, unload.forget) == (STOP, True)


def test_a_model_not_for_this_host_is_never_manifest_removed():
    # the same running record without the NotHere input would be pruned: the input is what saves it
    assert plan({}, {"a": seen()}).actions[0].reason == "manifest removed"
    assert "removed" not in plan({}, {"a": seen()}, elsewhere={"a": AMD}).actions[0].reason


def test_a_selector_change_that_still_selects_this_host_is_an_in_place_update():
    w = Want(name="a", spec_hash="h1", argv=ARGV, port=8001, binary_id="b",
             settings=InPlace(hosts="gpu.vendor In [amd, nvidia]"))
    a = plan({"a": w}, {"a": seen()}).actions[0]
    assert a.format() == "update   a: update in place: hosts gpu.vendor In [amd] → gpu.vendor In [amd, nvidia]"
    # a record from before spec.hosts (no "hosts" key) and a model without hosts: unchanged, no update
    none = Want(name="a", spec_hash="h1", argv=ARGV, port=8001, binary_id="b", settings=InPlace(hosts=None))
    assert plan({"a": none}, {"a": seen(settings=True, hosts=None)}).actions[0].reason == "unchanged"
    assert plan({"a": none}, {"a": Seen(name="a", state=State.READY, running=True, spec_hash="h1", argv=ARGV,
                                        port=8001, binary_id="b", settings=InPlace.from_json({}))}).actions[0].reason \
        == "unchanged"
