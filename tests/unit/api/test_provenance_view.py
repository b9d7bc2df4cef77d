"""GET /api/management/models and /metrics show a model's spec hash and provenance (from its record)."""

import time

from xgen_declare.processes.provenance import Provenance
from xgen_declare.processes.state_store import Record

COMMIT = "1" * 40
SHA = "2" * 64


def _record(api) -> None:
    """After the daemon's first pass (which would forget a record no manifest declares)."""
    deadline = time.monotonic() + 10
    while api.daemon.passes < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    file = str(api.manifests / "team" / "a.yaml")
    rec = Record(name="a", state="Stopped", spec_hash="abcd1234abcd1234", file=file,
                 provenance=Provenance(file, SHA, COMMIT, True))
    api.daemon.env.store.save(rec)


def test_models_show_provenance_with_a_relative_file(api):
    _record(api)
    [model] = [m for m in api.client.get("/api/management/models").json()["models"] if m["name"] == "a"]
    assert model["spec_hash"] == "abcd1234abcd1234"
    assert model["provenance"] == {"file": "team/a.yaml", "sha256": SHA, "commit": COMMIT, "dirty": True}


def test_metrics_info_line(api):
    _record(api)
    lines = [x for x in api.client.get("/metrics").text.splitlines() if x.startswith("xgen_model_info{")]
    assert lines == [f'xgen_model_info{{commit="{COMMIT}",dirty="true",file="team/a.yaml",model="a",'
                     f'sha256="{SHA}",spec_hash="abcd1234abcd1234"}} 1.0']
