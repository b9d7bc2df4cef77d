"""The typed interfaces are kept by what implements them (no type checker runs in CI): the supervisor
and its collaborators against processes/core.py, the daemon against reconciler/door.py (issue 22)."""

from __future__ import annotations

import typing

from xgen_declare.processes.core import Core, HealthPart, RolloutPart, SurgePart
from xgen_declare.processes.state_store import StateStore
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.reconciler.daemon import Daemon
from xgen_declare.reconciler.door import Control, Door


def members(proto: type) -> set[str]:
    names: set[str] = set()
    for k in proto.__mro__:
        if k in (typing.Protocol, typing.Generic, object):
            continue
        names |= {n for n in vars(k) if not n.startswith("_")} | set(getattr(k, "__annotations__", {}))
    return names


def missing(proto: type, obj: object) -> list[str]:
    return sorted(n for n in members(proto) if not hasattr(obj, n))


def test_the_supervisor_and_its_collaborators_have_what_core_promises(tmp_path):
    sup = Supervisor(StateStore(tmp_path / "state"))
    try:
        assert missing(Core, sup) == []
        assert (missing(HealthPart, sup.health), missing(RolloutPart, sup.rollouts), missing(SurgePart, sup.surges)) \
            == ([], [], [])
    finally:
        sup.close()


def test_the_daemon_is_a_door_and_a_control():
    instance_attrs = {"env", "snapshot", "inventory", "source"}  # set in Daemon.__init__
    assert [n for n in missing(Door, Daemon) if n not in instance_attrs] == []
    assert [n for n in missing(Control, Daemon) if n not in instance_attrs] == []


def test_the_check_can_fail():
    class Half:
        def gone(self, p, how=None):
            pass

    assert missing(HealthPart, Half()) == ["crashed", "exit_unhandled"]
