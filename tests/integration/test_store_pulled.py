"""A hub model `pull` put in the store is planned on its files by every verb, with no network (s9: `down`
said "placement unknown (metadata not read yet)" for it): `pull` pins the commit it fetched, as the daemon's
first fetch does, so the look in the store that plans without network (`down`, `plan`, `apply --dry-run`,
the API's preview) finds a whole repository too, and `apply` / `up` / the daemon take the pinned files at
once instead of resolving the branch on the hub first. The memory ledger reads the local GGUF (its figures
equal those of the same file named by model_path); a model not in the store still says placement unknown."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("gguf")

from xgen_declare.testing.fakehub import FakeHub  # noqa: E402
from xgen_declare.tools.tinygguf import write_tiny_gguf  # noqa: E402

from .test_store_daemon import configure, hub_manifest  # noqa: E402

WHOLE, QUANT = "hf://org/t-GGUF", "hf://org/t-GGUF:Q4_K_M"


@pytest.fixture
def hub(host, tmp_path):
    tiny = write_tiny_gguf(tmp_path / "disk" / "tiny.Q4_K_M.gguf")
    with FakeHub() as h:
        h.add_repo("org/t-GGUF", {"tiny.Q4_K_M.gguf": tiny.read_bytes()})
        h.add_repo("org/u-GGUF", {"u.Q4_K_M.gguf": tiny.read_bytes()})
        host.env["HF_ENDPOINT"] = h.endpoint
        host.env.pop("HF_HUB_OFFLINE", None)
        yield h, tiny


def pulled(host, hub):
    """`a` (a local file) applied, so that the state dir records the manifests dir; then `w` (a whole
    repository) and `q` (a quantisation of it) named and pulled."""
    h, tiny = hub
    configure(host)
    host.write("a", None, model_path=str(tiny), ctx_size=512)
    r = host.cli("apply", str(host.manifests))
    assert r.returncode == 0, r.stdout + r.stderr
    host.write("w", hub_manifest("w", WHOLE, ctx_size=512))
    host.write("q", hub_manifest("q", QUANT, ctx_size=512))
    r = host.cli("pull", str(host.manifests))
    assert r.returncode == 0, r.stdout + r.stderr
    return h


def ledger(out: str) -> dict:
    return {m["name"]: m for m in json.loads(out)["ledger"]["models"]}


def test_down_plan_and_dry_run_plan_a_pulled_model_on_its_files_without_network(host, hub):
    h = pulled(host, hub)
    asked = len(h.requests)
    r = host.cli("down")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "placement" not in r.stderr and "hub metadata" not in r.stderr, r.stderr
    for verb in (("plan",), ("apply", "--dry-run")):
        r = host.cli(*verb, str(host.manifests))
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert lines[:2] == ["start    q: new model", "start    w: new model"], r.stdout
        assert "placement" not in r.stdout + r.stderr and "not in the store" not in r.stdout, r.stdout + r.stderr
        out = host.cli(*verb, str(host.manifests), "-o", "json").stdout
        got = ledger(out)  # the ledger read the local GGUF: the figures of the same file named by model_path
        assert got["w"]["source"] == got["q"]["source"] == got["a"]["source"] == "predicted", got
        assert got["w"]["per_device_mib"] == got["q"]["per_device_mib"] == got["a"]["per_device_mib"], got
        assert json.loads(out)["ledger"]["warnings"] == {}
    assert len(h.requests) == asked  # planned from the store and the pins: the hub is asked nothing


def test_up_and_the_daemon_start_a_pulled_model_from_the_store_without_network(host, hub):
    h = pulled(host, hub)
    asked = len(h.requests)
    r = host.cli("up", "w", "q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "placement" not in r.stderr and "hub metadata" not in r.stderr, r.stderr
    assert host.cli("down").returncode == 0
    from .test_router import start_router
    base = start_router(host)
    assert host.cli("up").returncode == 0
    host.wait(lambda s: all(s[n]["state"] == "Ready" for n in ("a", "w", "q")), 30, "all Ready")
    import httpx
    preview = httpx.get(base + "/api/management/plan", timeout=10).json()
    assert preview["ledger"]["warnings"] == {} and preview["ledger"]["notes"] == [], preview["ledger"]
    assert "placement unknown" not in host.daemon_log() and "hub metadata" not in host.daemon_log()
    assert len(h.requests) == asked  # the pinned files: neither `up` nor the daemon resolved the branch again


def test_a_model_not_in_the_store_still_says_placement_unknown(host, hub):
    h = pulled(host, hub)
    host.write("n", hub_manifest("n", "hf://org/u-GGUF:Q4_K_M", ctx_size=512))  # named after the pull
    r = host.cli("down")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [ln for ln in r.stderr.splitlines() if "placement" in ln] == [
        "n: placement unknown (metadata not read yet): hf://org/u-GGUF:Q4_K_M; the manifest's explicit values "
        "are used"], r.stderr
    r = host.cli("plan", str(host.manifests))  # plan reads its header from the hub: placed before the fetch
    lines = r.stdout.splitlines()
    assert "keep     n: fetching hf://org/u-GGUF:Q4_K_M: not in the store yet" in lines, r.stdout
    assert [ln for ln in lines if "placement" in ln] == [
        "note: placement: n: placement from hub metadata (hf://org/u-GGUF:Q4_K_M at commit "
        f"{h.repos['org/u-GGUF'].refs['main'][:12]}), before its files are fetched"], r.stdout


def test_a_branch_the_store_holds_unpinned_is_placed_from_its_files_while_up_resolves_it(host, hub):
    """A store filled without a pin (`hf download` into the HuggingFace cache, a pull before pull pinned):
    `plan` and `down` find a file or quant source at the store's ref; `up` and the daemon resolve the branch on
    the hub first (the first fetch pins), and their first pass is placed from the files the store holds,
    never "placement unknown". A whole repository is found only at a pinned commit (its refs/main may come
    from a one-file fetch): it is planned from the hub's metadata until its fetch pins it."""
    import shutil
    h = pulled(host, hub)
    shutil.rmtree(host.state / "pins", ignore_errors=True)  # (main: pull pinned nothing)
    r = host.cli("plan", str(host.manifests))
    assert "start    q: new model" in r.stdout.splitlines() and "q: placement" not in r.stdout, r.stdout
    commit = h.repos["org/t-GGUF"].refs["main"]
    r = host.cli("up", "q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [ln for ln in r.stderr.splitlines() if "q: " in ln] == [
        f"placement: q: placement from the files the store holds ({QUANT} at commit {commit[:12]}) while its fetch "
        "asks the hub for the branch's commit"], r.stderr
    out = host.cli("plan", str(host.manifests), "-o", "json").stdout
    assert ledger(out)["q"]["per_device_mib"] == ledger(out)["a"]["per_device_mib"]
