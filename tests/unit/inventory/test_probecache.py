"""ProbeCache: values survive the process (disk), failures only within it; keys follow the binary."""

from __future__ import annotations

import os

from xgen_declare.inventory.probecache import FAILED, ProbeCache, binary_key


def test_disk_memory_and_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = ProbeCache("t.json")
    a.put("k1", {"v": 1})
    a.remember_failure("k2")
    b = ProbeCache("t.json")  # another process
    assert b.get("k1") == {"v": 1} and b.get("k2") is None
    assert a.get("k2") == FAILED
    a.clear()
    assert a.get("k1") == {"v": 1} and a.get("k2") is None


def test_binary_key_changes_with_the_file(tmp_path):
    f = tmp_path / "bin"
    f.write_text("one")
    k1 = binary_key(str(f))
    f.write_text("two!")
    os.utime(f, ns=(1, 1))
    assert k1 != binary_key(str(f)) and binary_key(str(tmp_path / "missing")) is None
