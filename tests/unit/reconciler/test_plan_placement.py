"""The planner with the memory ledger: manifests + sparse GGUFs + an inventory -> actions, no processes."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from xgen_declare.processes.settings import Placed
from xgen_declare.config import Config
from xgen_declare.inventory.model import Inventory
from xgen_declare.reconciler.plan import BLOCKED, START, Seen
from xgen_declare.testing.deadline import within
from xgen_declare.testing.synthetic import write_sparse_gguf
from xgen_declare.reconciler.apply import compute
from xgen_declare.states import State

HOST = {
    "gpus": [{"index": 0, "vendor": "nvidia", "type": "nvidia", "memory_total_mib": 16376, "memory_free_mib": 16000},
             {"index": 1, "vendor": "nvidia", "type": "nvidia", "memory_total_mib": 16376, "memory_free_mib": 16000}],
    "cpu": {"memory_total_mib": 65536, "memory_available_mib": 60000},
    "backends": [{"name": "llama-server-cuda", "available": True, "binary": "/bin/true", "dialect": "new"},
                 {"name": "vllm-cuda", "available": True, "binary": "/bin/true"}],
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("ggufs")
    write_sparse_gguf(d / "l8b.gguf", "llama3-8b", "F16", vocab=False)
    write_sparse_gguf(d / "l1b.gguf", "llama3.2-1b", "F16", vocab=False)
    (d / "junk.gguf").write_bytes(b"not a gguf at all, just text" * 10)
    return d


def doc(name, **spec):
    return textwrap.dedent(f"""\
        apiVersion: xgen/v1
        kind: Model
        metadata: {{name: {name}}}
        spec: {json.dumps(spec)}
        """)


def run(tmp_path, *docs, seen=None, host=HOST):
    mdir = tmp_path / "m"
    mdir.mkdir(exist_ok=True)
    (mdir / "models.yaml").write_text("---\n".join(docs))
    return compute([str(mdir)], Config(), Inventory.model_validate(host), seen or {}, ports_in_use=set)


def test_planted_overcommit_is_blocked_and_the_other_starts(tmp_path, models):
    p = run(tmp_path, doc("llama3-8b", model_path=str(models / "l8b.gguf"), backend="llama-server-cuda", gpus=[0],
                          ctx_size=8192),
            doc("embed", model_path=str(models / "l1b.gguf"), backend="llama-server-cuda", gpus=[0], ctx_size=8192,
                server_type="embedding")).plan
    assert p.get("embed").kind == START
    a = p.get("llama3-8b")
    assert a.kind == BLOCKED
    assert a.reason.startswith("overcommit: llama3-8b: 15.1 GiB on GPU0 + embed: 2.6 GiB > 14.6 GiB usable; "
                               "try n_gpu_layers ≤ ")
    text = p.format()
    assert "memory ledger (MiB = 2^20 bytes):" in text and "(blocked)" in text
    assert text.splitlines()[-1] == "1 to start, 0 to restart, 0 to stop, 1 blocked, 0 unchanged"
    gpu0 = p.to_json()["ledger"]["devices"][0]
    assert gpu0["device"] == "GPU0" and gpu0["usable_mib"] == 14976.0 and list(gpu0["models"]) == ["embed"]


def test_auto_layers_are_rendered_explicitly_with_fit_off(tmp_path, models):
    r = run(tmp_path, doc("a", model_path=str(models / "l8b.gguf"), backend="llama-server-cuda", gpus=[0, 1],
                          n_gpu_layers="auto", tensor_split="auto", ctx_size=8192))
    argv = r.desired.rendered["a"].argv
    i = argv.index("--n-gpu-layers")
    assert argv[i + 1] == "33" and argv[i + 2:i + 4] == ["--fit", "off"]
    split = argv[argv.index("--tensor-split") + 1].split(",")
    assert len(split) == 2 and sum(float(x) for x in split) == 33
    assert r.plan.get("a").kind == START


def test_unreadable_gguf_falls_back_to_fit_with_a_warning(tmp_path, models):
    r = run(tmp_path, doc("a", model_path=str(models / "junk.gguf"), backend="llama-server-cuda", gpus=[0],
                          n_gpu_layers="auto", tensor_split="auto"),
            doc("b", model_path=str(tmp_path / "missing.gguf"), backend="llama-server-cuda", n_gpu_layers=20))
    argv = r.desired.rendered["a"].argv
    assert argv[argv.index("--n-gpu-layers") + 1] == "auto" and "--fit" not in argv and "--tensor-split" not in argv
    b = r.desired.rendered["b"].argv
    assert b[b.index("--n-gpu-layers") + 1] == "20"
    assert {a.kind for a in r.plan.actions} == {START}
    w = r.plan.ledger.warnings
    assert w["a"] == (f"placement unknown: {models / 'junk.gguf'}: not a GGUF file (no GGUF magic at the start); "
                      "n_gpu_layers: auto is left to llama-server's --fit")
    assert w["b"].startswith(f"placement unknown: {tmp_path / 'missing.gguf'}: cannot read") and \
        w["b"].endswith("the manifest's explicit values are used")


def test_truncated_gguf_is_a_warning_not_a_crash(tmp_path, models):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((models / "l1b.gguf").read_bytes()[:200])
    r = run(tmp_path, doc("a", model_path=str(cut), backend="llama-server-cuda", gpus=[0]))
    assert r.plan.get("a").kind == START and "truncated GGUF file" in r.plan.ledger.warnings["a"]


def test_running_model_counts_with_measured_buffers(tmp_path, models):
    first = run(tmp_path, doc("a", model_path=str(models / "l1b.gguf"), backend="llama-server-cuda", gpus=[0]))
    want = first.wants["a"]
    seen = {"a": Seen("a", state=State.READY, running=True, spec_hash=want.spec_hash, argv=want.argv, port=want.port,
                      backend=want.backend, gpus=want.gpus, env_digest=want.env_digest, binary_id=want.binary_id,
                      buffers={"GPU0": {"weights": 2000.0, "kv_cache": 500.0, "compute": 100.0}})}
    host = json.loads(json.dumps(HOST))
    host["gpus"][0]["memory_free_mib"] = 13000  # the running model's memory is not free
    r = run(tmp_path, doc("a", model_path=str(models / "l1b.gguf"), backend="llama-server-cuda", gpus=[0]),
            seen=seen, host=host)
    assert r.plan.get("a").kind == "keep"
    e = r.plan.ledger.entry("a")
    assert e.source == "measured" and e.use["GPU0"] == 2600 * (1 << 20)
    assert r.plan.ledger.capacity["GPU0"] == (13000 + 2600 - 1024) * (1 << 20)  # added back once


def test_vllm_heads_not_divisible_is_blocked(tmp_path):
    d = tmp_path / "tinyhf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"num_attention_heads": 4, "num_hidden_layers": 2, "hidden_size": 64}))
    host = json.loads(json.dumps(HOST))
    host["gpus"].append({"index": 2, "vendor": "nvidia", "type": "nvidia", "memory_total_mib": 16376})
    r = run(tmp_path, doc("v", model_path=str(d), backend="vllm-cuda", gpus=[0, 1, 2], tensor_parallel_size=3),
            host=host)
    a = r.plan.get("v")
    assert (a.kind, a.reason) == (BLOCKED, "Total number of attention heads (4) must be divisible by tensor "
                                           "parallel size (3).")


def test_validate_with_inventory_reports_placement(cli, tmp_path, models):
    host = tmp_path / "host.yaml"
    host.write_text(json.dumps(HOST))
    mdir = tmp_path / "v"
    mdir.mkdir()
    (mdir / "m.yaml").write_text("---\n".join([
        doc("big", model_path=str(models / "l8b.gguf"), backend="llama-server-cuda", gpus=[0], n_gpu_layers=-1,
            ctx_size=8192),
        doc("embed", model_path=str(models / "l1b.gguf"), backend="llama-server-cuda", gpus=[0], ctx_size=8192),
        doc("junk", model_path=str(models / "junk.gguf"), backend="llama-server-cuda", gpus=[1])]))
    r = cli("validate", str(mdir), "--inventory", str(host))
    assert r.code == 1
    lines = r.err.splitlines()
    assert lines[0] == (f"{mdir / 'm.yaml'}:4: spec.n_gpu_layers: overcommit: big: 15.1 GiB on GPU0 > 14.6 GiB "
                        "usable; try n_gpu_layers ≤ 31 (see `xgen-declare plan` for the ledger)")
    assert lines[1].startswith(f"{mdir / 'm.yaml'}:14: warning: spec.model_path: placement unknown: ")
    assert cli("validate", str(mdir)).code == 0  # without --inventory nothing about this host is checked


def test_running_auto_model_keeps_the_values_its_record_says_it_started_with(tmp_path, models):
    """The state record carries the placement values rendered at spawn (Resolved.placement_values): the next
    pass keeps them while they fit, without reading the running process's argv back."""
    spec = dict(model_path=str(models / "l1b.gguf"), backend="llama-server-cuda", gpus=[0], n_gpu_layers="auto")
    first = run(tmp_path, doc("a", **spec))
    fresh = first.desired.rendered["a"]
    assert fresh.placement.n_gpu_layers == first.plan.ledger.entry("a").n_gpu_layers > 5
    want = first.wants["a"]
    base = dict(spec_hash="old", argv=("llama-server",), port=want.port, backend=want.backend, gpus=want.gpus)
    kept = run(tmp_path, doc("a", **spec), seen={"a": Seen("a", state=State.READY, running=True, **base,
                                                          placement=Placed(5, []))})
    assert kept.plan.ledger.entry("a").n_gpu_layers == 5
    assert kept.desired.rendered["a"].placement == Placed(5, [])
    unknown = run(tmp_path, doc("a", **spec), seen={"a": Seen("a", state=State.READY, running=True, **base)})  # older record
    assert unknown.plan.ledger.entry("a").n_gpu_layers == fresh.placement.n_gpu_layers


def test_previous_values_from_a_record():
    from xgen_declare.desired.demands import previous_values

    def values(data, n_layer):  # from the record's JSON, as a record written by an older daemon is read
        return previous_values(Placed.from_json(data), n_layer)

    assert values({"n_gpu_layers": -1, "tensor_split": [1, 2.5]}, 16) == (17, [1.0, 2.5])
    assert values({"n_gpu_layers": 99, "tensor_split": "auto"}, 16) == (17, [])
    assert values({"n_gpu_layers": 3, "tensor_split": []}, 16) == (3, [])
    assert values({"n_gpu_layers": "auto", "tensor_split": []}, 16) is None
    assert values({"tensor_split": []}, 16) is None and values(None, 16) is None
    assert previous_values(None, 16) is None


def _hostile(path, kind):
    from xgen_declare.testing.hostile_gguf import STRING, array, nested_array, string, u64, write_gguf
    if kind == "fifo":
        os.mkfifo(path)
        return str(path)
    bad = {"nested": {"general__x": nested_array(5000)},
           "string_count": {"llama__block_count": string("abc")},
           "block_count_2^33": {"llama__block_count": u64(2 ** 33)},
           "strings_2^60": {"general__x": array(STRING, 2 ** 60), "tensors": [], "size": 1 << 30}}[kind]
    return write_gguf(path, **bad)


@pytest.mark.parametrize("kind,said", [
    ("nested", "implausible GGUF header: metadata key 'general.x': arrays nested more than 3 deep"),
    ("string_count", "metadata llama.block_count is a string ('abc'), not an integer"),
    ("block_count_2^33", "metadata llama.block_count = 8589934592: xgen-declare models 1..256 layers"),
    ("strings_2^60", "implausible GGUF header: metadata key 'general.x': an array of 1152921504606846976 strings"),
    ("fifo", "is a FIFO (named pipe), not a regular file"),
])
def test_a_hostile_gguf_is_one_models_warning_and_the_others_are_placed(tmp_path, models, kind, said):
    """#21 finding 2: one crafted model file broke every pass for all models (RecursionError, ValueError,
    MemoryError, a 20 s loop, a FIFO that blocked). Now it is that model's 'placement unknown'."""
    bad = _hostile(tmp_path / "bad.gguf", kind)
    r = within(20, lambda: run(tmp_path, doc("bad", model_path=bad, backend="llama-server-cuda", gpus=[0],
                                             n_gpu_layers="auto"),
                               doc("good", model_path=str(models / "l1b.gguf"), backend="llama-server-cuda",
                                   gpus=[1], n_gpu_layers="auto", ctx_size=8192)), "the plan")
    warning = r.plan.ledger.warnings["bad"]
    assert warning.startswith(f"placement unknown: {bad}: {said}") and "good" not in r.plan.ledger.warnings
    assert warning.endswith("n_gpu_layers: auto is left to llama-server's --fit")
    argv = r.desired.rendered["bad"].argv
    assert argv[argv.index("--n-gpu-layers") + 1] == "auto"
    good = r.plan.ledger.entry("good")
    assert good.source == "predicted" and good.n_gpu_layers == 17 and good.resolved
    assert {a.kind for a in r.plan.actions} == {START}


@pytest.mark.parametrize("kind", ["string_count", "nested", "fifo"])
def test_plan_render_and_fit_on_a_hostile_gguf_exit_like_any_unreadable_one(cli, tmp_path, models, kind):
    """`render` and `export` warn 'placement unknown' and go on (exit 0); `plan` prints the whole plan and
    exits 1 (a model file that is there but no usable GGUF is invalid input, README "Exit codes"); `fit
    MODEL.gguf` has nothing else to say: exit 1. Never 70 (internal error), never a hang."""
    host = tmp_path / "host.yaml"
    host.write_text(json.dumps(HOST))
    mdir = tmp_path / "v"
    mdir.mkdir()
    bad = _hostile(tmp_path / "bad.gguf", kind)
    (mdir / "m.yaml").write_text("---\n".join([
        doc("bad", model_path=bad, backend="llama-server-cuda", gpus=[0], n_gpu_layers="auto"),
        doc("good", model_path=str(models / "l1b.gguf"), backend="llama-server-cuda", gpus=[1], ctx_size=8192,
            n_gpu_layers="auto")]))
    state = ["--state-dir", str(tmp_path / "state")]
    r = within(30, lambda: cli("plan", str(mdir), "--inventory", str(host), *state), "plan")
    assert r.code == 1, r.err
    assert f"warning: bad: placement unknown: {bad}: " in r.err and "internal error" not in r.err
    assert "good" in r.out and "GPU1" in r.out  # the ledger still places the good model
    r = within(30, lambda: cli("render", str(mdir), "--inventory", str(host), "-o", "json", *state), "render")
    assert r.code == 0, r.err
    rendered = {m["name"]: m["argv"] for m in json.loads(r.out)}
    assert rendered["good"][rendered["good"].index("--n-gpu-layers") + 1] == "17"
    assert rendered["bad"][rendered["bad"].index("--n-gpu-layers") + 1] == "auto"
    (mdir / "xgen-declare.yaml").write_text(json.dumps({"kubernetes": {
        "images": {"llama-server-cuda": "llama:cuda"}, "model_volume": {"local_dir": "/", "claim": "models"}}}))
    r = within(30, lambda: cli("export", "kubernetes", str(mdir), *state), "export")
    assert r.code == 0, r.err
    assert "name: bad" in r.out and "name: good" in r.out
    r = within(30, lambda: cli("fit", bad, "--inventory", str(host)), "fit")
    assert r.code == 1 and r.err.startswith(f"error: {bad}: ") and "internal error" not in r.err


def test_an_exception_while_gathering_one_models_demand_is_that_models_warning(tmp_path, models, monkeypatch):
    """Any exception but GgufError out of one model's demand (here: the vLLM config lookup) is that
    model's 'placement unknown'; the llama.cpp model beside it is still placed."""
    from xgen_declare.desired import demands

    def boom(model_path):
        raise RuntimeError("a gap in the checks")

    monkeypatch.setattr(demands, "find_config", boom)
    r = run(tmp_path, doc("v", model_path="org/m", backend="vllm-cuda", gpus=[1]),
            doc("good", model_path=str(models / "l1b.gguf"), backend="llama-server-cuda", gpus=[0], ctx_size=8192,
                n_gpu_layers="auto"))
    assert r.plan.ledger.warnings == {"v": "placement unknown: RuntimeError: a gap in the checks"}
    assert r.plan.ledger.entry("good").n_gpu_layers == 17 and {a.kind for a in r.plan.actions} == {START}
