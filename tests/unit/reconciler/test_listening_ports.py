"""`listening_ports()` (every reconcile pass, to keep assigned ports off ports others listen on) reads
/proc/net/tcp and tcp6 itself: psutil.net_connections() also maps every socket to its process by
scanning every process's fds, ~40 ms a pass on a busy 2-core host (bench/cold_start.py: an on-demand
wake runs two passes)."""

from __future__ import annotations

import socket

import psutil

from xgen_declare.reconciler import observe as reconcile
from xgen_declare.reconciler.observe import listening_ports


def test_sees_listeners_not_bound_or_connected_sockets(monkeypatch):
    def no_scan(*a, **kw):
        raise AssertionError("psutil.net_connections scans every process's fds")

    monkeypatch.setattr(psutil, "net_connections", no_scan)
    with socket.socket() as lst, socket.socket() as bound, socket.socket(socket.AF_INET6) as lst6:
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        bound.bind(("127.0.0.1", 0))
        lst6.bind(("::1", 0))
        lst6.listen()
        with socket.create_connection(lst.getsockname()) as client:
            ports = listening_ports()
            assert lst.getsockname()[1] in ports and lst6.getsockname()[1] in ports
            assert bound.getsockname()[1] not in ports
            assert client.getsockname()[1] not in ports


def test_unreadable_proc_means_no_ports(monkeypatch, tmp_path):
    monkeypatch.setattr(reconcile, "PROC_NET", str(tmp_path / "missing"))
    monkeypatch.setattr(psutil, "net_connections", lambda *a, **kw: [])
    assert listening_ports() == set()
