import json
import os

from xgen_declare.processes.state_store import held_ports
from xgen_declare.processes.state_store import Record, StateStore


def test_round_trip_and_held_ports(tmp_path):
    s = StateStore(tmp_path)
    rec = Record(name="a", state="Ready", pid=123, start_ticks=42, boot_id="b", port=8005, restarts=2,
                 argv=["x", "--port", "8005"])
    s.save(rec)
    back = s.load("a")
    assert back.to_json() | {"updated_at": None} == rec.to_json() | {"updated_at": None}
    assert held_ports(str(tmp_path)) == {"a": 8005}
    assert not [f for f in os.listdir(tmp_path / "models") if f.endswith(".tmp")]


def test_corrupt_record_is_reported_and_skipped(tmp_path):
    s = StateStore(tmp_path)
    s.save(Record(name="good", port=8001))
    (tmp_path / "models" / "bad.json").write_text('{"name": "bad", "po')
    (tmp_path / "models" / "list.json").write_text("[1]")
    recs = s.load_all()
    assert list(recs) == ["good"]
    assert s.problems == [
        f"corrupt record {tmp_path}/models/bad.json: not valid JSON (Unterminated string starting at: line 1 "
        "column 17 (char 16)); fix: remove it (xgen-declare writes it again)",
        f"corrupt record {tmp_path}/models/list.json: not a JSON object; fix: remove it (xgen-declare writes it "
        "again)"]


def test_unknown_keys_are_ignored(tmp_path):
    s = StateStore(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.json").write_text(json.dumps({"name": "a", "future_key": 1, "state": "Weird"}))
    rec = s.load("a")
    assert rec.name == "a" and rec.state_enum.value == "Pending"


def test_lock_is_exclusive(tmp_path):
    a, b = StateStore(tmp_path), StateStore(tmp_path)
    assert a.try_lock()
    assert not b.try_lock()
    assert b.is_locked() and b.lock_holder() == os.getpid()
    a.unlock()
    assert b.try_lock()
    b.unlock()


def test_requests_are_taken_once(tmp_path):
    s = StateStore(tmp_path)
    s.put_request("down", ["a"])
    assert s.take_requests() == [{"verb": "down", "names": ["a"]}]
    assert s.take_requests() == []
