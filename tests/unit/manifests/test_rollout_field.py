"""`spec.rollout` (issue 15): validation with exact messages, and its place among the in-place fields."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from xgen_declare.manifests.load import load_paths
from xgen_declare.processes.settings import InPlace
from xgen_declare.reconciler.rollout import settings_changes


def problems(write, **rollout) -> list[str]:
    write("m.yaml", model_yaml(rollout=rollout))
    return [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems]


def spec_of(write, **rollout):
    write("m.yaml", model_yaml(rollout=rollout))
    return load_paths([str(write.root)]).models[0].spec.rollout


def test_defaults(write):
    write("m.yaml", model_yaml())
    r = load_paths([str(write.root)]).models[0].spec.rollout
    assert (r.strategy, r.drain_timeout) == ("auto", 60.0)


@pytest.mark.parametrize("value, seconds", [("90s", 90.0), ("1h", 3600.0), (0, 0.0), ("0s", 0.0), (2.5, 2.5)])
def test_drain_timeout_values(write, value, seconds):
    assert spec_of(write, drain_timeout=value).drain_timeout == seconds


def test_negative_drain_timeout(write):
    assert problems(write, drain_timeout=-5) == [
        "6: spec.rollout.drain_timeout: must be 0 or more (0 = stop without waiting for requests)"]


def test_absurd_drain_timeout(write):
    assert problems(write, drain_timeout="2h") == [
        "6: spec.rollout.drain_timeout: 7200s is more than 3600s (use at most 1h: requests wait this long for a "
        "rollout or a stop)"]


def test_infinite_drain_timeout(write):
    assert problems(write, drain_timeout="inf") == [
        "6: spec.rollout.drain_timeout: must be finite (use at most 1h: requests wait this long for a rollout or a "
        "stop)"]


def test_unknown_strategy_and_field(write):
    assert problems(write, strategy="blue-green", drain=5) == [
        "6: spec.rollout.strategy: Input should be 'auto', 'surge' or 'recreate' (use one of the listed values)",
        "6: spec.rollout.drain: unknown field `drain` (valid fields: strategy, drain_timeout)"]


def test_rollout_changes_are_described_per_field():
    old = {"rollout": {"strategy": "auto", "drain_timeout": 60.0}}
    new = {"rollout": {"strategy": "recreate", "drain_timeout": 5.0}}
    assert settings_changes(InPlace.from_json(old), InPlace.from_json(new)) == [
        "rollout.drain_timeout 60 → 5", "rollout.strategy auto → recreate"]
