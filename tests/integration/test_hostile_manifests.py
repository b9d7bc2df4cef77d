"""Issue 21 findings 1 and 11 with a running daemon: a running model's manifest replaced by a FIFO, a link
to /dev/zero and a link to / in the manifests dir. Before: the loop blocked in open() for ever (no
restarts, SIGTERM ignored) or read /dev/zero until MemoryError. Now each is a problem for that file, the
model keeps its process (as for any invalid manifest), the other manifests converge, SIGTERM ends it."""

from __future__ import annotations

import os
import signal

from tests.integration.conftest import alive

FIFO = ("is a FIFO (named pipe), not a regular file: skipped (never opened) (replace it with a regular "
        "manifest file or remove it)")


def test_a_fifo_a_dev_zero_link_and_a_link_to_root_never_stall_the_daemon(host):
    host.write("a")
    host.write("b")
    d = host.start_daemon()
    pid_a = host.wait_ready("a", "b")["a"]["pid"]
    (host.manifests / "a.yaml").unlink()
    os.mkfifo(host.manifests / "a.yaml")
    (host.manifests / "zero.yaml").symlink_to("/dev/zero")
    (host.manifests / "everything").symlink_to("/")
    host.write("c")  # converges although the dir holds all of the above
    st = host.wait_ready("c")
    st = host.wait(lambda s: s["a"]["manifest_error"], what="a's problem reported")
    assert st["a"]["manifest_error"] == f"{host.manifests}/a.yaml: {FIFO}"
    assert (st["a"]["state"], st["a"]["pid"]) == ("Ready", pid_a) and alive(pid_a)
    assert st["b"]["state"] == "Ready" and d.poll() is None
    d.send_signal(signal.SIGTERM)
    assert d.wait(timeout=20) == 0
    assert alive(pid_a)  # the models outlive the daemon (no --stop-on-exit)
