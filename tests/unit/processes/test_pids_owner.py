"""#21 finding 14 through the proc_root seam: `pids.owned` needs the same process (pid, start ticks,
boot id) AND its own XGEN_DECLARE_OWNER equal to the record's marker, which must be one of ours."""

from __future__ import annotations

import pytest

from xgen_declare.processes import pids

PID, TICKS, BOOT = 4242, 777, "boot-1"
PREFIX = "owner1/a/"


@pytest.fixture
def proc_root(tmp_path):
    root = tmp_path / "proc"
    (root / "sys/kernel/random").mkdir(parents=True)
    (root / "sys/kernel/random/boot_id").write_text(BOOT + "\n")
    (root / str(PID)).mkdir()
    (root / str(PID) / "stat").write_text(f"{PID} (llama server) S " + " ".join(["0"] * 18 + [str(TICKS)] + ["0"] * 5))
    return root


def environ(root, *items: bytes) -> None:
    (root / str(PID) / "environ").write_bytes(b"\0".join(items) + b"\0")


def test_only_the_marker_the_record_names_is_owned(proc_root):
    environ(proc_root, b"PATH=/bin", b"XGEN_DECLARE_OWNER=owner1/a/beef", b"HOME=/root")
    root = str(proc_root)
    assert pids.owner_tag_of(PID, root) == "owner1/a/beef"
    assert pids.owned(PID, TICKS, BOOT, "owner1/a/beef", PREFIX, root)
    assert not pids.owned(PID, TICKS, BOOT, "owner1/a/other", PREFIX, root)   # another spawn's marker
    assert not pids.owned(PID, TICKS, BOOT, None, PREFIX, root)               # a record without one
    assert not pids.owned(PID, TICKS, BOOT, "owner1/a/beef", "owner2/a/", root)  # not our owner id
    assert not pids.owned(PID, TICKS + 1, BOOT, "owner1/a/beef", PREFIX, root)   # another process


def test_a_process_without_a_marker_or_an_unreadable_environ_is_not_owned(proc_root):
    root = str(proc_root)
    assert pids.owner_tag_of(PID, root) is None  # no environ file: unreadable
    assert not pids.owned(PID, TICKS, BOOT, "owner1/a/beef", PREFIX, root)
    environ(proc_root, b"PATH=/bin", b"XGEN_DECLARE_OWNER_X=owner1/a/beef")
    assert pids.owner_tag_of(PID, root) is None
    assert not pids.owned(PID, TICKS, BOOT, "owner1/a/beef", PREFIX, root)
