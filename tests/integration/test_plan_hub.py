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


def offline_setup(cli, hub, write, tmp_path, monkeypatch, offline: bool):
    """a and u fetched by `pull` online; b named afterwards (not in the store); then offline."""
    import hashlib
    from xgen_declare.cli import pull
    h, tiny = hub
    monkeypatch.setattr(pull, "disk_usage", lambda path: (10**12, 0, 10**12))
    fake = tmp_path / "fake-llama-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    cfg = {"store": {"dir": str(tmp_path / "store")}, "binaries": {"llama-server-cpu": str(fake)}}
    write("xgen-declare.yaml", json.dumps(cfg))
    h.add_repo("org/u-GGUF", {"u.Q4_K_M.gguf": tiny.read_bytes()})
    h.add_repo("org/w-GGUF", {"w.Q4_K_M.gguf": tiny.read_bytes()})
    url = h.add_file("u.gguf", tiny.read_bytes())
    write("a.yaml", manifest("a", "source", SRC))
    write("w.yaml", manifest("w", "source", "hf://org/w-GGUF"))  # a whole repository, not pinned: at its ref
    write("u.yaml", manifest("u", "source", {"url": url, "sha256": hashlib.sha256(tiny.read_bytes()).hexdigest()}))
    d = str(tmp_path / "manifests")
    assert run(cli, tmp_path, "pull", d).code == 0
    write("b.yaml", manifest("b", "source", "hf://org/u-GGUF:Q4_K_M"))
    if offline:
        cfg["store"]["offline"] = True
        write("xgen-declare.yaml", json.dumps(cfg))
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(h.requests)
    r = run(cli, tmp_path, "plan", d)
    assert len(h.requests) == asked, "offline, plan asks the hub nothing"
    commits = {repo: h.repos[repo].refs["main"][:12] for repo in ("org/t-GGUF", "org/w-GGUF")}
    return r, commits, hashlib.sha256(tiny.read_bytes()).hexdigest()[:12], url


@pytest.mark.parametrize("offline", [True, False], ids=["store.offline", "HF_HUB_OFFLINE"])
def test_offline_plan_says_what_the_store_holds_and_blocks_what_it_lacks(cli, hub, write, tmp_path, monkeypatch,
                                                                         offline):
    r, commits, sha, url = offline_setup(cli, hub, write, tmp_path, monkeypatch, offline)
    why = "store.offline" if offline else "HF_HUB_OFFLINE"
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[:4] == ["start    a: new model", "start    u: new model", "start    w: new model",
                         f"blocked  b: offline ({why}): hf://org/u-GGUF:Q4_K_M is not in the store; it stays "
                         "Blocked until it is fetched (xgen-declare pull without offline)"]
    assert f"note: store: offline ({why}): a uses what the store holds ({SRC} at commit " \
           f"{commits['org/t-GGUF']})" in lines
    assert f"note: store: offline ({why}): u uses what the store holds ({url} at sha256 {sha})" in lines
    assert f"note: store: offline ({why}): w uses what the store holds (hf://org/w-GGUF at commit " \
           f"{commits['org/w-GGUF']})" in lines
    assert [ln for ln in lines if "offline" in ln and not ln.startswith(("note: store:", "blocked  b"))] == []


def test_online_plan_has_no_offline_line(cli, hub, write, tmp_path, monkeypatch):
    h, _ = hub
    write("a.yaml", manifest("a", "source", SRC))
    r = run(cli, tmp_path, "plan", str(tmp_path / "manifests"))
    assert "offline" not in r.out + r.err


def test_plan_places_a_url_gguf_from_its_header_as_the_file_on_disk(cli, hub, write, tmp_path, monkeypatch):
    import hashlib
    h, tiny = hub
    monkeypatch.setattr(hubmeta, "HEAD_FIRST", 4096)
    data = tiny.read_bytes()
    url = h.add_file("tiny.Q4_K_M.gguf", data)
    sha = hashlib.sha256(data).hexdigest()
    write("url.yaml", manifest("url", "source", {"url": url, "sha256": sha}))
    write("disk.yaml", manifest("disk", "model_path", str(tiny)))
    d = str(tmp_path / "manifests")
    r = run(cli, tmp_path, "plan", d)
    assert f"note: placement: url: placement from the GGUF header read over HTTP ({url}, sha256 {sha[:12]}), " \
           "before its file is fetched" in r.out
    assert "placement unknown" not in r.out + r.err
    got = [q["range"] for q in h.requests if q["path"] == "/files/tiny.Q4_K_M.gguf" and q["method"] == "GET"]
    assert got == ["bytes=0-4095", "bytes=4096-16383"]  # the header, never the file
    out = run(cli, tmp_path, "plan", d, "-o", "json").out
    a, b = ledger_of(out, "url"), ledger_of(out, "disk")
    assert a["source"] == b["source"] == "predicted" and a["per_device_mib"] == b["per_device_mib"]
