"""Typed record values (processes/settings.py): the record file keeps its JSON shape, and what an older
daemon (or a hand edit) wrote is read back, never an exception (issue 22 item 3)."""

from __future__ import annotations

import json

from xgen_declare.manifests.fields import RolloutSpec
from xgen_declare.processes.settings import DEFAULT_DRAIN, InPlace, Placed
from xgen_declare.processes.state_store import Record, StateStore

OLD = {"activation": "on-demand", "idle_timeout": 300, "ready_timeout": 600.0, "stop_grace": 10.0,
       "labels": {"team": "x"}, "rollout": {"strategy": "surge", "drain_timeout": 5.0}}


def test_in_place_round_trips_the_json_an_older_daemon_wrote():
    s = InPlace.from_json(OLD)
    assert s is not None and (s.on_demand, s.strategy, s.drain_timeout, s.idle_timeout) == (True, "surge", 5.0, 300.0)
    assert s.rollout == RolloutSpec(strategy="surge", drain_timeout=5.0)
    assert s.to_json() == {**OLD, "idle_timeout": 300.0, "hosts": None}


def test_broken_values_read_as_the_defaults():
    s = InPlace.from_json({"activation": 7, "stop_grace": "x", "labels": [1], "rollout": {"strategy": "sideways"}})
    assert s == InPlace()
    assert s.drain_timeout == DEFAULT_DRAIN
    assert InPlace.from_json(None) is None and InPlace.from_json("x") is None


def test_placed_keeps_its_shape_and_n_cpu_moe_only_when_set():
    assert Placed(12, []).to_json() == {"n_gpu_layers": 12, "tensor_split": []}
    assert Placed("auto", "auto", 3).to_json() == {"n_gpu_layers": "auto", "tensor_split": "auto", "n_cpu_moe": 3}
    odd = Placed.from_json({"n_gpu_layers": True, "tensor_split": [1, "x", 2.5], "n_cpu_moe": False})
    assert odd == Placed("auto", [1.0, 2.5], None) and (odd.layers, odd.split, odd.cpu_moe) == (None, [1.0, 2.5], 0)


def test_a_record_file_from_before_is_adopted_with_typed_values(tmp_path):
    store = StateStore(tmp_path / "state")
    store.save(Record(name="a"))
    path = store.record_path("a")
    data = json.loads(path.read_text())
    data.update(settings=OLD, placement={"n_gpu_layers": 20, "tensor_split": [1, 1]})
    path.write_text(json.dumps(data))
    rec = store.load("a")
    assert rec is not None and rec.settings == InPlace.from_json(OLD) and rec.placement == Placed(20, [1.0, 1.0])
    store.save(rec)
    again = json.loads(path.read_text())
    assert again["settings"] == {**OLD, "idle_timeout": 300.0, "hosts": None}
    assert again["placement"] == {"n_gpu_layers": 20, "tensor_split": [1.0, 1.0]}
