"""Finding 8 (#21): disabled models take no port; a full range Blocks only the models that do not fit
(the rest of the pass still applies), `plan` exits 1 naming them, `status` shows them Blocked."""

from __future__ import annotations

import json
import sys

from tests.conftest import model_yaml
from xgen_declare.config import Config, Ports
from xgen_declare.desired.build import build_desired
from xgen_declare.inventory.model import Inventory
from xgen_declare.reconciler.apply import compute
from xgen_declare.reconciler.plan import Seen
from xgen_declare.states import State

RANGE = Ports(start=29201, end=29202)
FULL = ("no free port in 29201-29202 (ports: in xgen-declare.yaml): every port of the range is taken by "
        "other models (widen ports: in xgen-declare.yaml, or give c an explicit spec.port)")


def m(name: str, **spec) -> str:
    return model_yaml(name, backend="llama-server-cpu", binary=sys.executable, **spec)


def _config() -> Config:
    return Config(ports=RANGE)


def test_fit_ports_hands_out_what_is_left_and_names_the_rest():
    from xgen_declare.desired.ports import fit_ports

    out, missing = fit_ports({"c": None, "a": None, "b": None}, 29201, 29202)
    assert {n: a.port for n, a in out.items()} == {"a": 29201, "b": 29202}
    assert missing == ["c"]


def test_disabled_models_take_no_port(write):
    write("a.yaml", m("a", enabled=False))
    write("b.yaml", m("b"))
    write("c.yaml", m("c"))
    write("d.yaml", m("d", enabled=False, port=29999))
    d = build_desired([str(write.root)], _config(), Inventory(), held_ports={"a": 29201})
    assert {n: (r.port, r.port_source) for n, r in d.rendered.items()} == {
        "a": (0, "none"), "b": (29201, "assigned"), "c": (29202, "assigned"), "d": (29999, "manifest")}
    assert d.unported == [] and d.blocked == {}


def test_a_full_range_blocks_only_the_model_that_does_not_fit(write):
    paths = {n: write(f"{n}.yaml", m(n)) for n in ("a", "b", "c")}
    result = compute([str(write.root)], _config(), Inventory(), {}, ports_in_use=set)
    actions = {a.name: (a.kind.value, a.reason) for a in result.plan.actions}
    assert actions == {"a": ("start", "new model"), "b": ("start", "new model"),
                       "c": ("blocked", f"{paths['c']}:1: spec.port: {FULL}")}
    assert result.problems == [
        "xgen-declare.yaml: ports: no free port in 29201-29202 for: c (Blocked; the other models start) (widen "
        "ports: in xgen-declare.yaml, or give c an explicit spec.port)"]


def test_a_full_range_still_applies_an_unrelated_edit(write):
    for n in ("a", "b", "c"):
        write(f"{n}.yaml", m(n))
    first = compute([str(write.root)], _config(), Inventory(), {}, ports_in_use=set)
    seen = {n: Seen(**vars(w.identity()), state=State.READY, running=True)
            for n, w in first.wants.items() if n != "c"}
    write("b.yaml", m("b", ctx_size=8192))  # the edit the full range used to swallow
    result = compute([str(write.root)], _config(), Inventory(), seen, ports_in_use=set)
    kinds = {a.name: a.kind.value for a in result.plan.actions}
    assert kinds == {"a": "keep", "b": "restart", "c": "blocked"}
    assert result.wants["b"].port == 29202  # b keeps its port; c still finds none


def test_plan_exits_1_naming_the_models_without_a_port(cli, write, tmp_path):
    for n in ("a", "b", "c"):
        write(f"{n}.yaml", m(n))
    write("xgen-declare.yaml", json.dumps({"ports": {"start": 29201, "end": 29202}}))
    state = ("--state-dir", str(tmp_path / "state"))
    r = cli(*state, "plan", str(write.root), "-o", "json")
    assert r.code == 1, r.err
    assert {a["name"]: a["kind"] for a in r.json()["actions"]} == {"a": "start", "b": "start", "c": "blocked"}
    assert ("xgen-declare.yaml: ports: no free port in 29201-29202 for: c (Blocked; the other models start) "
            "(widen ports: in xgen-declare.yaml, or give c an explicit spec.port)") in r.err.splitlines()
    r = cli(*state, "apply", "--dry-run", str(write.root))
    assert r.code == 1 and "for: c (Blocked" in r.err
    write("c.yaml", m("c", enabled=False))  # disabled: needs no port, the plan is fine
    r = cli(*state, "plan", str(write.root))
    assert r.code == 0, r.err


def test_render_marks_a_disabled_models_missing_port(cli, write, tmp_path):
    write("a.yaml", m("a"))
    write("idle.yaml", m("idle", enabled=False))
    r = cli("--state-dir", str(tmp_path / "state"), "render", str(write.root))
    assert r.code == 0, r.err
    rows = {line.split()[0]: line.split()[2] for line in r.out.splitlines()[1:3]}
    assert rows == {"a": "8001*", "idle": "0-"}
    assert "- no port: enabled: false takes none from the range (it gets one once enabled)" in r.out.splitlines()
