"""The harness's port picks (tests and benches) stay outside the kernel's ephemeral range and never overlap."""

from __future__ import annotations

import socket

from xgen_declare.desired.ports import ephemeral_range
from xgen_declare.testing import harness


def test_a_client_port_in_time_wait_blocks_a_server_bind():
    """Why: the local port of an outgoing connection (open, or in TIME_WAIT for 60 s after) cannot be bound
    by a server even with SO_REUSEADDR, so a test port from the ephemeral range can be taken under it."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        client = socket.create_connection(srv.getsockname())
        local = client.getsockname()[1]
        accepted, _ = srv.accept()
        client.close()  # the client closes first: its port goes to TIME_WAIT
        accepted.close()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", local))
            bound = True
        except OSError:
            bound = False
    assert not bound
    lo, hi = ephemeral_range()
    assert lo <= local <= hi


def test_picks_avoid_the_ephemeral_range_and_each_other():
    lo, hi = ephemeral_range()
    ports = [harness.free_port() for _ in range(5)]
    blocks = [harness.free_port_block(20) for _ in range(3)]
    assert all(not lo <= p <= hi for p in ports + [b + 19 for b in blocks] + blocks)
    assert len(set(ports)) == 5
    spans = sorted((b, b + 19) for b in blocks)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # no overlap
    assert harness.free_port_block(1, lo=40000) < lo  # a range asked inside the ephemeral one is clipped
