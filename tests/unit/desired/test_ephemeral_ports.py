"""desired/ports.py's readers of the kernel's ephemeral range and reserved ports (doctor's port check)."""

from __future__ import annotations

from xgen_declare.desired.ports import ephemeral_range, reserved_ports


def test_ephemeral_range_reads_the_injected_proc(tmp_path):
    f = tmp_path / "sys/net/ipv4/ip_local_port_range"
    f.parent.mkdir(parents=True)
    f.write_text("1024\t65000\n")
    assert ephemeral_range(str(tmp_path)) == (1024, 65000)
    assert ephemeral_range(str(tmp_path / "none")) == (32768, 60999)
    (f.parent / "ip_local_reserved_ports").write_text("8001-8003,9000\n")
    assert reserved_ports(str(tmp_path)) == {8001, 8002, 8003, 9000}
    assert reserved_ports(str(tmp_path / "none")) == set()
