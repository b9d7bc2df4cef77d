"""A state dir that cannot be written (read-only, full): supervision goes on from memory, every failure
is kept with its path and errno, and the records are written again once the dir is writable."""

import errno
import signal
from pathlib import Path

import pytest

from xgen_declare.reconciler.apply import execute
from xgen_declare.processes import state_store
from xgen_declare.config import Reconciler
from xgen_declare.reconciler.plan import RESTART, START, STOP, Action, Plan
from xgen_declare.processes.state_store import Record, StateStore
from xgen_declare.states import State
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.testing.fakes import FakeProber, spec


@pytest.fixture
def store(tmp_path, writer):
    return StateStore(tmp_path / "state", writer=writer)


@pytest.fixture
def sup(tmp_path, store, clock, world):
    s = Supervisor(store, Reconciler(backoff_base=10), clock=clock, popen=world.popen, prober=FakeProber(),
                   proc_root=str(tmp_path / "proc"))
    yield s
    s.close()


def run(sup, *actions, specs=()):
    execute(sup, Plan(list(actions)), {s.name: s for s in specs}, {})


def settle(sup, n=4):
    for _ in range(n):
        sup.tick()


def test_restart_signals_first_and_goes_on_from_memory(sup, store, writer, world, clock, caplog):
    run(sup, Action(START, "a", "new"), specs=[spec("a")])
    settle(sup)
    old = world.last
    assert store.load("a").state == "Ready"
    writer.fail(store.models_dir)
    run(sup, Action(RESTART, "a", "argv changed"), specs=[spec("a", version="2")])
    assert old.signals == [signal.SIGTERM]  # signalled although "Ready -> Stopping" could not be saved
    settle(sup)
    new = world.last
    assert new is not old and (sup.procs["a"].state, sup.procs["a"].rec.pid) == (State.READY, new.pid)
    path = store.record_path("a")
    on_disk = store.load("a")  # the old record is intact, never truncated
    assert (on_disk.state, on_disk.pid) == ("Ready", old.pid)
    failure = store.write_failures[str(path)]
    assert (failure.path, failure.errno, failure.code) == (str(path), errno.EROFS, "EROFS")
    assert str(failure) == f"cannot write {path}: Read-only file system (errno 30 EROFS)"
    assert "supervisor error" not in caplog.text and "Traceback" not in caplog.text

    writer.heal()
    clock.advance(1)
    sup.tick()
    on_disk = store.load("a")
    assert (on_disk.state, on_disk.pid, on_disk.restarts) == ("Ready", new.pid, 1)
    assert store.write_failures == {}


def test_one_failing_record_does_not_stop_the_rest_of_the_plan(sup, store, writer, world):
    writer.fail(store.record_path("a"))
    run(sup, Action(START, "a", "new"), Action(START, "b", "new"), specs=[spec("a"), spec("b", 8002)])
    assert [p.argv[2] for p in world.started] == ["8001", "8002"]
    assert store.load("a") is None and store.load("b").state == "Starting"
    assert list(store.write_failures) == [str(store.record_path("a"))]


def test_a_crash_loop_is_retried_while_nothing_can_be_saved(sup, store, writer, world, clock, caplog):
    run(sup, Action(START, "a", "new"), specs=[spec("a")])
    settle(sup)
    writer.fail()  # every path: a full disk
    writer.err = errno.ENOSPC
    world.last.exit(1)
    sup.tick()  # the first crash after a Ready run restarts at once
    assert sup.procs["a"].state == State.STARTING and len(world.started) == 2
    for delay in (10, 20):
        world.last.exit(1)
        sup.tick()
        assert sup.procs["a"].state == State.CRASH_LOOP_BACK_OFF
        clock.advance(delay)
        sup.tick()
        assert sup.procs["a"].state == State.STARTING
    assert len(world.started) == 4
    assert store.write_failures[str(store.record_path("a"))].code == "ENOSPC"
    assert "supervisor error" not in caplog.text


def test_a_forgotten_model_is_deleted_once_the_dir_is_writable(sup, store, world, clock, monkeypatch):
    run(sup, Action(START, "a", "new"), specs=[spec("a")])
    settle(sup)
    path = store.record_path("a")
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    run(sup, Action(STOP, "a", "no manifest declares it", forget=True))
    settle(sup)
    assert "a" not in sup.procs and path.exists()
    assert str(store.write_failures[str(path)]) == f"cannot write {path}: Permission denied (errno 13 EACCES)"
    monkeypatch.setattr(Path, "unlink", real_unlink)
    clock.advance(1)
    sup.tick()
    assert not path.exists() and store.write_failures == {}


def test_a_failed_write_leaves_the_old_file_whole_and_no_temp_file(tmp_path, monkeypatch):
    store = StateStore(tmp_path)
    store.save(Record(name="a", port=8001))
    before = store.record_path("a").read_text()

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state_store.os, "write", full)
    with pytest.raises(state_store.StateWriteError) as info:
        store.save(Record(name="a", port=9999))
    monkeypatch.undo()
    path = store.record_path("a")
    assert str(info.value) == f"cannot write {path}: No space left on device (errno 28 ENOSPC)"
    assert path.read_text() == before
    assert sorted(p.name for p in store.models_dir.iterdir()) == ["a.json"]


def test_a_log_that_cannot_be_opened_does_not_keep_the_model_from_starting(sup, store, world, clock):
    store.root.mkdir(parents=True, exist_ok=True)
    store.logs_dir.write_text("a regular file where the logs dir belongs: EEXIST/ENOTDIR, for root too")
    run(sup, Action(START, "a", "new"), specs=[spec("a")])
    settle(sup)
    assert len(world.started) == 1 and sup.procs["a"].state == State.READY
    path = store.log_path("a")
    assert str(store.write_failures[str(path)]) == f"cannot write {path}: File exists (errno 17 EEXIST)"
    store.logs_dir.unlink()
    world.last.exit(1)
    sup.tick()  # the first crash after a Ready run: the restart at once opens the log again
    assert len(world.started) == 2 and store.write_failures == {}
    assert "starting a (restart at once)" in path.read_text()
