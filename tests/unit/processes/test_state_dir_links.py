"""#21 finding 13: the state dir never follows a planted symlink (logs, rotation, records, temp files,
the lock), keeps its logs 0600 and creates its directories 0700."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from xgen_declare.errors import StateWriteError
from xgen_declare.processes.logfiles import open_log, rotate_if_needed, tail
from xgen_declare.processes.state_store import Record, StateStore, atomic_write

SECRET = "root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def target(tmp_path):
    """A file outside the state dir that a planted link points at."""
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_log_link_is_never_appended_to(tmp_path, target):
    log_path = tmp_path / "state" / "logs" / "a.log"
    log_path.parent.mkdir(parents=True)
    log_path.symlink_to(target)
    heard = []
    fd = open_log(log_path, "starting a", lambda p, exc: heard.append((p, exc)))
    try:
        os.write(fd, b"backend output\n")
    finally:
        os.close(fd)
    assert target.read_text() == SECRET
    [(path, exc)] = heard
    assert path == log_path and exc.errno == errno.ELOOP
    assert exc.strerror == ("is a symlink; remove it (xgen-declare writes its logs itself and never through a "
                            "link)")
    assert tail(log_path) == ""  # and never read through it either


def test_rotation_never_truncates_through_a_link(tmp_path, target):
    log_path = tmp_path / "a.log"
    log_path.symlink_to(target)
    assert rotate_if_needed(log_path, max_bytes=4, backups=2) is False
    assert target.read_text() == SECRET
    assert not os.path.lexists(tmp_path / "a.log.1")


def test_rotation_keeps_0600_and_replaces_a_link_at_the_backup(tmp_path, target):
    log_path = tmp_path / "a.log"
    fd = open_log(log_path, "starting a")
    os.write(fd, b"x" * 100 + b"\n")
    os.close(fd)
    (tmp_path / "a.log.1").symlink_to(target)
    assert rotate_if_needed(log_path, max_bytes=10, backups=3) is True
    assert log_path.read_bytes() == b"" and mode(log_path) == 0o600
    backup = tmp_path / "a.log.1"
    assert not backup.is_symlink() and mode(backup) == 0o600 and backup.read_bytes().endswith(b"x" * 100 + b"\n")
    assert os.path.islink(tmp_path / "a.log.2")  # the old .1 shifted up by name, never written through
    assert target.read_text() == SECRET


def test_a_temp_file_link_at_the_old_predictable_name_is_not_clobbered(tmp_path, target):
    models = tmp_path / "models"
    models.mkdir()
    (models / f".a.json.{os.getpid()}.tmp").symlink_to(target)
    atomic_write(models / "a.json", '{"name": "a"}')
    assert target.read_text() == SECRET
    assert json.loads((models / "a.json").read_text()) == {"name": "a"}
    assert mode(models / "a.json") == 0o600


def test_the_state_dir_and_its_folders_are_created_0700(tmp_path):
    root = tmp_path / "new" / "state"
    s = StateStore(root)
    assert s.try_lock()
    s.unlock()
    s.save(Record(name="a"))
    s.append_history("a", {"to": "h"})
    for d in (root, root / "models", root / "history"):
        assert mode(d) == 0o700, d
    open_log(s.log_path("a"), "starting a")
    assert mode(root / "logs") == 0o700 and mode(s.log_path("a")) == 0o600


def test_a_record_link_is_reported_and_skipped(tmp_path):
    s = StateStore(tmp_path / "state")
    s.save(Record(name="good"))
    outside = tmp_path / "a.json"
    outside.write_text(json.dumps({"name": "a", "pid": 1}))
    (tmp_path / "state" / "models" / "a.json").symlink_to(outside)
    assert s.load("a") is None
    assert list(s.load_all()) == ["good"]
    assert s.problems == [
        f"corrupt record {tmp_path}/state/models/a.json: is a symlink, and this file may not be one; fix: remove "
        "it (xgen-declare writes it again)"]


def test_a_lock_link_is_refused_and_its_target_untouched(tmp_path, target):
    root = tmp_path / "state"
    root.mkdir()
    (root / "daemon.lock").symlink_to(target)
    with pytest.raises(StateWriteError) as exc:
        StateStore(root).try_lock()
    assert target.read_text() == SECRET
    assert "is a symlink; remove it" in str(exc.value)
