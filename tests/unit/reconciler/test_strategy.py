"""Rollout strategy (reconciler/strategy.py) with plain data and sparse GGUFs: which restarts surge, on
which spare port, and why the others recreate or are Blocked. No processes."""

from __future__ import annotations

import json

import pytest

from xgen_declare.config import Config
from xgen_declare.inventory.model import Inventory
from xgen_declare.processes.spec import Seen
from xgen_declare.reconciler.apply import compute
from xgen_declare.reconciler.plan import BLOCKED, KEEP, RESTART, Cause
from xgen_declare.states import State
from xgen_declare.testing.synthetic import write_sparse_gguf
from tests.unit.reconciler.test_plan_placement import HOST, doc

CPU_HOST = {"cpu": {"memory_total_mib": 65536, "memory_available_mib": 60000},
            "backends": [{"name": "llama-server-cpu", "available": True, "binary": "/bin/true", "dialect": "new"}]}


@pytest.fixture(scope="module")
def gguf(tmp_path_factory):
    d = tmp_path_factory.mktemp("ggufs")
    write_sparse_gguf(d / "l1b.gguf", "llama3.2-1b", "F16", vocab=False)
    write_sparse_gguf(d / "l8b.gguf", "llama3-8b", "F16", vocab=False)
    return d


def run(tmp_path, text, seen=None, host=CPU_HOST, ports=(8001, 8020)):
    mdir = tmp_path / "m"
    mdir.mkdir(exist_ok=True)
    (mdir / "m.yaml").write_text(text)
    cfg = Config.model_validate({"ports": {"start": ports[0], "end": ports[1]}})
    return compute([str(mdir)], cfg, Inventory.model_validate(host), seen or {}, ports_in_use=set)


def running(first, name="a", **kw):
    """The Seen of `name` running what `first` planned, as Ready."""
    w = first.wants[name]
    ident = {**vars(w.identity()), "file": None}  # the identity it was started with (one declaration, shared)
    return {name: Seen(**ident, state=State.READY, running=True, settings=w.settings, **kw)}


def edit(tmp_path, gguf, first_ctx=2048, ctx=4096, **spec):
    spec.setdefault("model_path", str(gguf / "l1b.gguf"))
    spec.setdefault("backend", "llama-server-cpu")
    first = run(tmp_path, doc("a", ctx_size=first_ctx, **spec))
    return first, running(first), doc("a", ctx_size=ctx, **spec)


def test_auto_surges_a_cpu_model_that_fits_on_a_spare_port(tmp_path, gguf):
    first, seen, text = edit(tmp_path, gguf)
    r = run(tmp_path, text, seen)
    a = r.plan.get("a")
    assert (a.kind, a.surge) == (RESTART, True)
    held = seen["a"].port
    spare = r.surges.specs["a"].port
    assert spare != held and spare == 8002 and r.surges.wants["a"].port == spare
    assert a.reason == f"argv changed: --ctx-size 2048 → 4096; auto: surge, the new process starts on port {spare} " \
                       "beside the old one"
    assert "--port" in r.surges.specs["a"].argv and str(spare) in r.surges.specs["a"].argv
    assert r.desired.rendered["a"].port == held  # what `render` shows stays the model's own port


def test_recreate_is_left_as_planned(tmp_path, gguf):
    first, seen, text = edit(tmp_path, gguf, rollout={"strategy": "recreate"})
    a = run(tmp_path, text, seen).plan.get("a")
    assert (a.kind, a.surge, a.reason) == (RESTART, False, "argv changed: --ctx-size 2048 → 4096")


def test_a_pinned_port_recreates_under_auto_and_blocks_under_surge(tmp_path, gguf):
    first, seen, text = edit(tmp_path, gguf, port=8005)
    a = run(tmp_path, text, seen).plan.get("a")
    assert (a.kind, a.surge) == (RESTART, False)
    assert a.reason.endswith("; auto: recreate (spec.port pins port 8005: two processes cannot share it)")
    first, seen, text = edit(tmp_path, gguf, port=8005, rollout={"strategy": "surge"})
    b = run(tmp_path, text, seen).plan.get("a")
    assert (b.kind, b.cause) == (BLOCKED, Cause.BLOCKED)
    assert b.reason == ("rollout.strategy surge: spec.port pins port 8005: two processes cannot share it; keeping "
                        "the running process (use rollout.strategy auto or recreate)")


def test_a_second_copy_that_does_not_fit_blocks_surge_and_recreates_under_auto(tmp_path, gguf):
    gpu = json.loads(json.dumps(HOST))
    gpu["gpus"] = [dict(gpu["gpus"][0], memory_total_mib=24000, memory_free_mib=23000)]  # one 8B fits, two do not
    spec = dict(model_path=str(gguf / "l8b.gguf"), backend="llama-server-cuda", gpus=[0])
    first = run(tmp_path, doc("a", ctx_size=2048, **spec), host=gpu)
    seen = running(first, buffers={"GPU0": {"weights": 15000.0, "kv_cache": 256.0, "compute": 300.0}})
    r = run(tmp_path, doc("a", ctx_size=4096, rollout={"strategy": "surge"}, **spec), seen, host=gpu)
    a = r.plan.get("a")
    assert a.kind == BLOCKED and a.reason.startswith("rollout.strategy surge: the second process does not fit: "
                                                     "15556 MiB more on GPU0, ")
    auto = run(tmp_path, doc("a", ctx_size=4096, **spec), seen, host=gpu).plan.get("a")
    assert (auto.kind, auto.surge) == (RESTART, False) and "; auto: recreate (the second process does not fit" \
        in auto.reason


def test_a_surge_under_way_is_kept_and_a_newer_spec_surges_again_elsewhere(tmp_path, gguf):
    first, seen, text = edit(tmp_path, gguf)
    r = run(tmp_path, text, seen)
    spare = r.surges.specs["a"]
    under_way = running(first, surge_hash=spare.spec_hash(), surge_port=spare.port)
    again = run(tmp_path, text, under_way)
    a = again.plan.get("a")
    assert (a.kind, a.cause, a.surge) == (KEEP, Cause.SURGING, False) and a.reason.startswith(
        f"surge under way: spec {spare.spec_hash()} starts on port {spare.port} beside the serving process")
    newer = run(tmp_path, doc("a", ctx_size=8192, model_path=str(gguf / "l1b.gguf"), backend="llama-server-cpu"),
                under_way)
    b = newer.plan.get("a")
    assert (b.kind, b.surge) == (RESTART, True) and newer.surges.specs["a"].port not in (seen["a"].port, spare.port)


def test_a_model_not_ready_recreates(tmp_path, gguf):
    first, seen, text = edit(tmp_path, gguf)
    seen = {"a": Seen(**{**seen["a"].__dict__, "state": State.UNHEALTHY})}
    a = run(tmp_path, text, seen).plan.get("a")
    assert a.surge is False and a.reason.endswith("; auto: recreate (the running process is Unhealthy, not Ready)")


def test_auto_needs_the_ledger_to_say_yes_explicit_surge_goes_on_with_a_note(tmp_path):
    spec = dict(model_path="/models/missing.gguf", backend="llama-server-cpu")
    first = run(tmp_path, doc("a", ctx_size=2048, **spec))
    seen = running(first)
    a = run(tmp_path, doc("a", ctx_size=4096, **spec), seen).plan.get("a")
    assert a.surge is False and a.reason.endswith(
        "; auto: recreate (placement unknown: the memory ledger cannot tell whether two processes fit)")
    b = run(tmp_path, doc("a", ctx_size=4096, rollout={"strategy": "surge"}, **spec), seen).plan.get("a")
    assert b.surge is True and b.reason.endswith("beside the old one; placement unknown: no memory check")
