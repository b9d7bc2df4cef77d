"""`run` with a state dir whose record files cannot be written (issue 12, item 2).

How the fault is made: the tests run as root, and chmod, a read-only bind mount or a full tmpfs either
do not stop root or need privileges a CI container may not have. Every record write creates
`models/.NAME.json.<daemon pid>.tmp` first (state_store.atomic_write); a directory of that name makes
the kernel refuse that open(O_CREAT|O_WRONLY) with EISDIR, for root too and on any filesystem, while
the old records stay readable (so the test can check they are never truncated). Removing the
directories is the dir becoming writable again.
"""

from __future__ import annotations

import json
import time

from .conftest import alive


def block(host, daemon_pid: int, *names: str) -> list:
    dirs = [host.state / "models" / f".{n}.json.{daemon_pid}.tmp" for n in names]
    for d in dirs:
        d.mkdir()
    return dirs


def starts(host, name: str) -> int:
    return (host.state / "logs" / f"{name}.log").read_text().count(f"starting {name} (")


def test_unwritable_records_never_freeze_the_daemon(host):
    host.write("a", ctx_size=4096)
    host.write("crashy", env={"FAKE_MODE": "exit_now"})
    d = host.start_daemon()
    st = host.wait(lambda s: s["a"]["state"] == "Ready" and s["crashy"]["restarts"] >= 1,
                   what="a Ready, crashy looping")
    old_pid = st["a"]["pid"]
    dirs = block(host, d.pid, "a", "crashy")
    record = host.state / "models" / "a.json"
    before = record.read_text()
    crashy_starts = starts(host, "crashy")

    host.write("a", ctx_size=8192)  # an edit: the old process must be signalled and replaced
    st = host.wait(lambda s: s["a"]["state"] == "Ready" and s["a"]["pid"] not in (None, old_pid), timeout=20,
                   what="a restarted from memory")
    assert not alive(old_pid)
    assert st["a"]["state_write_failed"] == f"cannot write {record}: Is a directory (errno 21 EISDIR)"
    deadline = time.monotonic() + 10
    while starts(host, "crashy") < crashy_starts + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert starts(host, "crashy") >= crashy_starts + 2  # the crash loop is still retried
    assert record.read_text() == before and json.loads(before)["pid"] == old_pid  # never truncated

    r = host.cli("status")
    assert r.returncode == 0, r.stderr
    assert f"daemon: state_write_failed: cannot write {record}: Is a directory (errno 21 EISDIR); the daemon " \
           "supervises from memory and writes the records again once the state dir is writable" in r.stderr
    assert "no daemon noticed yet" not in r.stdout + r.stderr
    log = host.daemon_log()
    assert "Traceback" not in log and "supervisor error" not in log
    reports = log.count("state_write_failed: cannot write")
    assert 1 <= reports <= 12, reports  # once per pass (resync 2 s) or change, not once per step

    for x in dirs:
        x.rmdir()
    st = host.wait(lambda s: s["a"]["state_write_failed"] is None and s["crashy"]["state_write_failed"] is None,
                   what="records written again")
    assert json.loads(record.read_text())["pid"] == st["a"]["pid"] != old_pid
    assert "state dir writable again: every record is written" in host.daemon_log()
    assert "state_write_failed" not in host.cli("status").stderr


def test_a_process_the_records_do_not_name_is_not_left_running(host):
    """The daemon exits while a restart could not be recorded: the next daemon must not run a second copy
    beside the unrecorded one (it would hold the port)."""
    host.write("a", ctx_size=4096)
    d = host.start_daemon()
    old_pid = host.wait_ready("a")["a"]["pid"]
    dirs = block(host, d.pid, "a")
    host.write("a", ctx_size=8192)
    deadline = time.monotonic() + 15
    while alive(old_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(old_pid)
    unrecorded = host.wait(lambda s: s["a"]["state"] == "Ready" and s["a"]["pid"] != old_pid,
                           what="a restarted from memory")["a"]["pid"]
    d.terminate()
    d.wait(10)
    for x in dirs:
        x.rmdir()
    assert alive(unrecorded)
    host.start_daemon()
    st = host.wait(lambda s: s["a"]["state"] == "Ready" and s["a"]["pid"] not in (old_pid, unrecorded),
                   timeout=20, what="a started once more, alone")
    assert not alive(unrecorded) and st["a"]["port"] == host.base  # killed, its port is the model's again
