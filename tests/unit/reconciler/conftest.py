"""A real Daemon over a temp manifests dir (one disabled model, no binaries) for the step and inbox tests."""

from __future__ import annotations

import json

import pytest

from tests.conftest import model_yaml
from xgen_declare.config import load_config
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.daemon import Daemon
from xgen_declare.reconciler.env import Env


@pytest.fixture
def make_daemon(tmp_path, clock):
    """make_daemon(writer=None) -> a started Daemon; shut down at the end of the test."""
    made: list[Daemon] = []

    def make(writer=None) -> Daemon:
        manifests = tmp_path / "m"
        manifests.mkdir()
        cfg = {"binaries": {"llama-server-cpu": str(tmp_path / "no-such-binary")},
               "ports": {"start": 29101, "end": 29110}, "reconciler": {"resync_interval": 60, "debounce": 0}}
        (manifests / "xgen-declare.yaml").write_text(json.dumps(cfg))
        (manifests / "m.yaml").write_text(model_yaml("m", backend="llama-server-cpu", enabled=False))
        (tmp_path / "sys").mkdir()
        store = StateStore(tmp_path / "state", writer=writer) if writer else StateStore(tmp_path / "state")
        env = Env(load_config(None, [str(manifests)]), store, [str(manifests)], None, sysfs_root=str(tmp_path / "sys"))
        d = Daemon(env, clock=clock)
        d.start()
        made.append(d)
        return d

    yield make
    for d in made:
        d.shutdown()
