"""`plan` knows whether a hub model fits before it is downloaded (issue 23 item 6), in-process against the fake
hub: `validate` and `render` ask the hub nothing; `plan` reads the GGUF header with Range requests (never the
file) and says "placement from hub metadata", the ledger's figures equal those of the same file on disk; a
second `plan` uses what the state dir kept; offline, `plan` reads nothing and says so."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("gguf")

from xgen_declare.store import hubmeta  # noqa: E402
from xgen_declare.testing.deadline import within  # noqa: E402
from xgen_declare.testing.fakehub import FakeHub  # noqa: E402
from xgen_declare.tools.tinygguf import write_tiny_gguf  # noqa: E402

SRC = "hf://org/t-GGUF:Q4_K_M"


def manifest(name: str, key: str, where: str) -> str:
    return (f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  {key}: {json.dumps(where)}\n"
            "  backend: llama-server-cpu\n  ctx_size: 512\n")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    tiny = write_tiny_gguf(tmp_path / "disk" / "tiny.Q4_K_M.gguf")
    with FakeHub() as h:
        h.add_repo("org/t-GGUF", {"tiny.Q4_K_M.gguf": tiny.read_bytes()})
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h, tiny


def run(cli, tmp_path, *args):
    return within(60, lambda: cli(*args, "--state-dir", str(tmp_path / "state")), args[0])


def ledger_of(out: str, name: str) -> dict:
    return next(m for m in json.loads(out)["ledger"]["models"] if m["name"] == name)


def test_plan_places_a_hub_model_from_its_header_and_validate_render_ask_nothing(cli, hub, write, tmp_path,
                                                                                 monkeypatch):
    h, tiny = hub
    monkeypatch.setattr(hubmeta, "HEAD_FIRST", 4096)  # the tiny file is smaller than the first 1 MiB read
    write("hub.yaml", manifest("hub", "source", SRC))
    d = str(tmp_path / "manifests")
    assert run(cli, tmp_path, "validate", d).code == 0
    assert run(cli, tmp_path, "render", d).code == 0
    assert h.requests == []
    r = run(cli, tmp_path, "plan", d)
    sha = h.repos["org/t-GGUF"].refs["main"]
    assert f"note: placement: hub: placement from hub metadata ({SRC} at commit {sha[:12]}), before its files are " \
           "fetched" in r.out
    assert "placement unknown" not in r.out + r.err
    got = [r["range"] for r in h.requests if r["cdn"] and r["method"] == "GET"]  # logged before the bytes are sent
    assert got == ["bytes=0-4095", "bytes=4096-16383"]  # the header (4 KiB, then 4x): never the file
    asked = len(h.requests)
    write("disk.yaml", manifest("disk", "model_path", str(tiny)))
    out = run(cli, tmp_path, "plan", d, "-o", "json").out
    assert len(h.requests) == asked  # kept in the state dir: the hub is not asked again
    a, b = ledger_of(out, "hub"), ledger_of(out, "disk")
    assert a["source"] == b["source"] == "predicted" and a["per_device_mib"] == b["per_device_mib"]


def test_offline_plan_reads_nothing_and_says_so(cli, hub, write, tmp_path, monkeypatch):
    h, _ = hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write("hub.yaml", manifest("hub", "source", SRC))
    r = run(cli, tmp_path, "plan", str(tmp_path / "manifests"))
    assert h.requests == []
    assert "warning: hub: placement unknown (offline: the hub's metadata is not read (store.offline or " \
           "HF_HUB_OFFLINE); fetch it with `xgen-declare pull`): hf://org/t-GGUF:Q4_K_M" in r.err
