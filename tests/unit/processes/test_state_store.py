import json
import os
from pathlib import Path

from xgen_declare.processes.history import Entry
from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.settings import Placed
from xgen_declare.processes.state_store import SIDE_DEPTH, held_ports
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


# ---- typed side values (provenance, the open history entry, a surge's side records) ---------------------
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "records" / "surge-before-typing.json"


def test_a_record_written_before_typing_is_adopted_and_written_again_byte_for_byte(tmp_path):
    """surge-before-typing.json: written by the Record of before (dict provenance, rollout and sides) during a
    surge: the serving process with its provenance, the successor with its open history entry, a retiring one."""
    text = FIXTURE.read_text()
    store = StateStore(tmp_path)
    (tmp_path / "models").mkdir(mode=0o700)
    (tmp_path / "models" / "a.json").write_text(text)
    rec = store.load("a")
    assert rec is not None and store.problems == []
    prov = Provenance("/m/a.yaml", "0" * 64, "c" * 40, False)
    assert rec.provenance == prov and rec.rollout is None
    side = rec.surge
    assert isinstance(side, Record) and (side.name, side.pid, side.port, side.marker) == ("a", 4242, 8102, "xgen-a-2")
    assert side.rollout == Entry(1700000100.5, "h1", "h2", prov)
    assert side.placement == Placed(20, [1.0, 1.0]) and side.surge is None
    assert rec.retiring is not None and rec.retiring.pid == 4000
    assert rec.retiring.provenance == Provenance("/m/a.yaml")
    assert json.dumps(rec.to_json(), indent=1, sort_keys=True) + "\n" == text


def test_side_values_of_the_wrong_type_read_as_unknown_never_as_a_corrupt_record(tmp_path):
    store = StateStore(tmp_path)
    store.save(Record(name="a"))
    path = store.record_path("a")
    data = json.loads(path.read_text())
    data.update(provenance={"file": 7, "sha256": "s", "commit": ["x"], "dirty": "yes"},
                rollout={"from": 1, "to": "h2", "result": "exploded", "started_at": "noon", "detail": 3},
                surge={"pid": 12, "port": 8102},           # no name: the model's
                retiring={"name": 5, "pid": 13})           # not a record: unknown, like no side at all
    path.write_text(json.dumps(data))
    rec = store.load("a")
    assert rec is not None and store.problems == []
    assert rec.provenance == Provenance(sha256="s")
    assert rec.rollout == Entry(None, None, "h2", Provenance())
    assert rec.surge is not None and (rec.surge.name, rec.surge.pid, rec.surge.port) == ("a", 12, 8102)
    assert rec.retiring is None
    for junk in ("x", [1], None, {}):
        data.update(provenance=junk, rollout=junk, surge=junk, retiring=junk)
        path.write_text(json.dumps(data))
        rec = store.load("a")
        assert (rec.provenance, rec.rollout, rec.surge, rec.retiring) == (None, None, None, None)


def test_a_side_record_is_a_copy_and_nesting_is_bounded():
    rec = Record(name="a", pid=1)
    rec.retiring = rec.snapshot()
    rec.pid = 2
    assert rec.retiring.pid == 1 and rec.to_json()["retiring"]["pid"] == 1
    deep: dict = {"name": "a"}
    for _ in range(SIDE_DEPTH + 3):
        deep = {"name": "a", "surge": deep}
    back = Record.from_json(deep)
    depth = 0
    while back.surge is not None:
        back, depth = back.surge, depth + 1
    assert depth == SIDE_DEPTH
