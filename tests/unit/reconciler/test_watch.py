"""Issue 21 finding 16: a state dir inside the manifests dir fed back into the watcher (every record the
daemon wrote woke the loop again: ~35 record writes/s per model). Events under an ignored dir never wake
the daemon; the filter is tested directly, then with the real watchdog observer."""

from __future__ import annotations

import os
import threading

from xgen_declare.reconciler.watch import Watcher, wakes

STATE = ("/m/state",)


def test_events_under_the_ignored_dir_do_not_wake():
    assert not wakes("modified", ["/m/state/models/a.json"], None, STATE)
    assert not wakes("created", ["/m/state"], None, STATE)
    assert not wakes("moved", ["/m/state/models/.a.json.tmp", "/m/state/models/a.json"], None, STATE)
    assert wakes("modified", ["/m/a.yaml"], None, STATE)
    assert wakes("modified", ["/m/statements.yaml"], None, STATE)  # a sibling that shares the prefix
    assert wakes("moved", ["/m/state/a.yaml", "/m/a.yaml"], None, STATE)  # moved out of it: a change
    assert not wakes("opened", ["/m/a.yaml"], None, STATE)
    assert not wakes("modified", ["/m/b.yaml"], "/m/a.yaml", ())
    assert wakes("modified", ["/m/a.yaml"], "/m/a.yaml", ())


def test_the_ignored_dir_is_spelled_through_a_linked_manifests_dir(tmp_path):
    real = tmp_path / "real"
    (real / "state").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    w = Watcher([], [], lambda p: None, ignore=[str(real / "state")])
    assert w._ignored_under(str(tmp_path / "link")) == (str(tmp_path / "link" / "state"), str(real / "state"))
    assert w._ignored_under(str(real / "state")) == ()  # the state dir IS the watched dir: nothing muted
    assert w._ignored_under(str(tmp_path / "elsewhere")) == ()


def test_the_real_observer_ignores_the_state_dir(tmp_path):
    mdir = tmp_path / "m"
    (mdir / "state" / "models").mkdir(parents=True)
    seen: list[str] = []
    sentinel = threading.Event()

    def on_change(path: str) -> None:
        seen.append(path)
        if path.endswith("sentinel.yaml"):
            sentinel.set()

    w = Watcher([str(mdir)], [], on_change, ignore=[str(mdir / "state")])
    w.start()
    try:
        for i in range(5):
            rec = mdir / "state" / "models" / "a.json"
            tmp = rec.with_suffix(".tmp")
            tmp.write_text(f'{{"n": {i}}}')
            os.replace(tmp, rec)
        (mdir / "sentinel.yaml").write_text("x: 1\n")  # events arrive in order: the state's came first
        assert sentinel.wait(10), f"no event for the sentinel within 10 s (seen: {seen})"
    finally:
        w.stop()
    assert seen and not [p for p in seen if "/state" in p]


def test_the_daemon_ignores_its_own_state_dir_inside_the_manifests_dir(tmp_path, clock):
    """The daemon gives the watcher its store's root: a record it writes does not wake it again."""
    import json

    from tests.conftest import model_yaml
    from xgen_declare.config import load_config
    from xgen_declare.processes.state_store import Record, StateStore
    from xgen_declare.reconciler.daemon import Daemon
    from xgen_declare.reconciler.env import Env

    mdir = tmp_path / "m"
    mdir.mkdir()
    (mdir / "xgen-declare.yaml").write_text(json.dumps({"ports": {"start": 29111, "end": 29120}}))
    (mdir / "m.yaml").write_text(model_yaml("m", backend="llama-server-cpu", enabled=False))
    (tmp_path / "sys").mkdir()
    store = StateStore(mdir / "state")
    env = Env(load_config(None, [str(mdir)]), store, [str(mdir)], None, sysfs_root=str(tmp_path / "sys"))
    d = Daemon(env, clock=clock)
    seen: list[str] = []
    sentinel = threading.Event()

    def changed(path: str = "") -> None:
        seen.append(path)
        if path.endswith("sentinel.yaml"):
            sentinel.set()

    d.file_changed = changed  # before start(): the watcher calls this
    d.start()
    try:
        for i in range(3):
            store.save(Record(name="m", state="Stopped", restarts=i))
        (mdir / "sentinel.yaml").write_text("x: 1\n")
        assert sentinel.wait(10), f"no event for the sentinel within 10 s (seen: {seen})"
    finally:
        d.shutdown()
    assert seen and not [p for p in seen if p.startswith(str(mdir / "state"))]
