"""`plan --inventory FILE` previews another host: its binaries are not on this machine and nothing of
ours runs there, so neither blocks the preview."""

from __future__ import annotations

from tests.conftest import model_yaml

INVENTORY = """apiVersion: xgen/v1
kind: Inventory
gpus:
  - {index: 0, vendor: nvidia, name: GPU, type: nvidia, memory_total_mib: 16376, memory_free_mib: 16000}
backends:
  - {name: llama-server-cuda, available: true, binary: /opt/elsewhere/llama-server, dialect: new}
"""


def test_plan_for_another_host_does_not_check_local_binaries(cli, write, tmp_path):
    inv = tmp_path / "host.yaml"
    inv.write_text(INVENTORY)
    write("a.yaml", model_yaml("a", backend="llama-server-cuda", gpus=[0]))
    r = cli("--state-dir", str(tmp_path / "state"), "plan", str(write.root), "--inventory", str(inv), "-o", "json")
    assert r.code == 0, r.err
    actions = {a["name"]: (a["kind"], a["reason"]) for a in r.json()["actions"]}
    assert actions == {"a": ("start", "new model")}
