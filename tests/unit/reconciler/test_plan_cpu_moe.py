"""`n_cpu_moe` in a manifest, through the planner: the ledger chooses N for `auto` (placement/choose.py),
counts the expert weights kept in host memory on the host's row, says so in a note, and the rendered
llama-server argv carries `--n-cpu-moe N`. Sparse Mixtral-8x7B-shaped GGUF (real header and tensor table)."""

from __future__ import annotations

import json

import pytest

from xgen_declare.processes.settings import Placed
from xgen_declare.config import Config
from xgen_declare.inventory.model import Inventory
from xgen_declare.placement.choose import GpuBudget, choose, fits, usable_bytes
from xgen_declare.placement.gguf_facts import read_gguf_facts
from xgen_declare.placement.memory import ContextSettings
from xgen_declare.placement.predict import MIB, expert_bytes_per_layer
from xgen_declare.reconciler.apply import compute
from xgen_declare.reconciler.plan import BLOCKED, START, Seen
from xgen_declare.states import State
from xgen_declare.testing.synthetic import write_sparse_gguf

from .test_plan_placement import doc

HOST = {  # one 24 GiB GPU: Mixtral Q4_0 (~24.6 GiB of weights) does not fit it with every expert
    "gpus": [{"index": 0, "vendor": "nvidia", "type": "nvidia", "memory_total_mib": 24564, "memory_free_mib": 24000}],
    "cpu": {"memory_total_mib": 131072, "memory_available_mib": 120000},
    "backends": [{"name": "llama-server-cuda", "available": True, "binary": "/bin/true", "dialect": "new"}],
}
CTX = ContextSettings(ctx_size=8192, parallel=1)


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    return str(write_sparse_gguf(tmp_path_factory.mktemp("moe") / "mixtral.gguf", "mixtral-8x7b", "Q4_0",
                                 vocab=False))




def run(tmp_path, *docs, seen=None):
    mdir = tmp_path / "m"
    mdir.mkdir(exist_ok=True)
    (mdir / "models.yaml").write_text("---\n".join(docs))
    return compute([str(mdir)], Config(), Inventory.model_validate(HOST), seen or {}, ports_in_use=set)


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_auto_chooses_n_renders_the_flag_and_counts_the_experts_on_the_host(tmp_path, mixtral):
    spec = dict(model_path=mixtral, backend="llama-server-cuda", gpus=[0], ctx_size=8192, parallel=1)
    p = run(tmp_path, doc("mixtral", **spec, n_cpu_moe="auto"))
    # the same choice as the library's (and `fit --n-cpu-moe auto`'s) against the ledger's budget
    budget = [GpuBudget(0, usable_bytes(24564, 24000, margin_mib=Config().placement.margin_mib))]
    want = choose(read_gguf_facts(mixtral), CTX, budget, "all", n_cpu_moe="auto")
    assert fits(want, budget) and want.n_cpu_moe > 0
    n = want.n_cpu_moe
    assert p.plan.get("mixtral").kind == START
    entry = p.plan.ledger.entry("mixtral")
    assert (entry.n_cpu_moe, entry.n_gpu_layers, entry.resolved) == (n, 33, True)
    experts = n * expert_bytes_per_layer(read_gguf_facts(mixtral))[0]
    assert entry.cpu_moe_bytes == experts
    assert entry.use["host"] >= experts  # the experts are in the host-memory ledger
    argv = p.desired.rendered["mixtral"].argv
    assert _flag(argv, "--n-cpu-moe") == str(n) and _flag(argv, "--n-gpu-layers") == "all"
    assert p.desired.rendered["mixtral"].placement.n_cpu_moe == n
    gpu_weights = entry.detail["GPU0"]["weights"]
    note = (f"mixtral: n_cpu_moe {n} (auto): {experts / MIB:.0f} MiB of expert weights of layers 0-{n - 1} in "
            f"host memory; model weights {gpu_weights / MIB:.0f} MiB on GPU0")
    assert f"note: placement: {note}" in p.plan.format().splitlines()
    assert note in p.plan.ledger.notes and p.plan.ledger.to_json()["models"][0]["n_cpu_moe"] == n


def test_without_n_cpu_moe_the_model_is_blocked_and_the_hint_names_auto(tmp_path, mixtral):
    spec = dict(model_path=mixtral, backend="llama-server-cuda", gpus=[0], ctx_size=8192, parallel=1)
    p = run(tmp_path, doc("mixtral", **spec))
    action = p.plan.get("mixtral")
    assert action.kind == BLOCKED
    assert "try n_cpu_moe: auto (" in action.reason
    assert "--n-cpu-moe" not in " ".join(p.desired.rendered["mixtral"].argv)


def test_an_explicit_n_is_rendered_and_predicted(tmp_path, mixtral):
    spec = dict(model_path=mixtral, backend="llama-server-cuda", gpus=[0], ctx_size=8192, parallel=1)
    p = run(tmp_path, doc("mixtral", **spec, n_cpu_moe=20))
    entry = p.plan.ledger.entry("mixtral")
    assert entry.n_cpu_moe == 20 and entry.cpu_moe_bytes == 20 * expert_bytes_per_layer(read_gguf_facts(mixtral))[0]
    assert _flag(p.desired.rendered["mixtral"].argv, "--n-cpu-moe") == "20"
    assert p.plan.get("mixtral").kind == START


def test_a_running_auto_model_keeps_the_n_its_record_says(tmp_path, mixtral):
    spec = dict(model_path=mixtral, backend="llama-server-cuda", gpus=[0], ctx_size=8192, parallel=1,
                n_cpu_moe="auto")
    first = run(tmp_path, doc("mixtral", **spec))
    want = first.wants["mixtral"]
    n = first.plan.ledger.entry("mixtral").n_cpu_moe
    base = dict(spec_hash="old", argv=("llama-server",), port=want.port, backend=want.backend, gpus=want.gpus)
    seen = {"mixtral": Seen("mixtral", state=State.READY, running=True, **base,
                            placement=Placed(33, [], n + 3))}
    kept = run(tmp_path, doc("mixtral", **spec), seen=seen)
    assert kept.plan.ledger.entry("mixtral").n_cpu_moe == n + 3  # still fits: no restart to shave 3 layers
    assert _flag(kept.desired.rendered["mixtral"].argv, "--n-cpu-moe") == str(n + 3)


def test_a_running_auto_model_with_an_edited_explicit_layer_count_is_predicted_with_the_new_count(tmp_path,
                                                                                                mixtral):
    """Keeping the started-with values applies to the `auto` fields only: n_cpu_moe: auto with
    n_gpu_layers edited from 20 to 30 is predicted (and rendered) with 30, not the record's 20."""
    spec = dict(model_path=mixtral, backend="llama-server-cuda", gpus=[0], ctx_size=8192, parallel=1,
                n_cpu_moe="auto", n_gpu_layers=30)
    first = run(tmp_path, doc("mixtral", **spec))
    want = first.wants["mixtral"]
    n = first.plan.ledger.entry("mixtral").n_cpu_moe + 2  # fits too: kept
    base = dict(spec_hash="old", argv=("llama-server",), port=want.port, backend=want.backend, gpus=want.gpus)
    seen = {"mixtral": Seen("mixtral", state=State.READY, running=True, **base,
                            placement=Placed(20, [], n))}
    p = run(tmp_path, doc("mixtral", **spec), seen=seen)
    entry = p.plan.ledger.entry("mixtral")
    assert (entry.n_gpu_layers, entry.n_cpu_moe) == (30, n)
    assert entry.cpu_moe_bytes == (n - 3) * expert_bytes_per_layer(read_gguf_facts(mixtral))[0]  # 0-2: on the CPU
    argv = p.desired.rendered["mixtral"].argv
    assert (_flag(argv, "--n-gpu-layers"), _flag(argv, "--n-cpu-moe")) == ("30", str(n))


def test_plan_and_fit_print_the_same_choice(tmp_path, mixtral, cli):
    """The CLI doors: `plan --inventory` prints the ledger note, `fit --n-cpu-moe auto` the same N."""
    host = tmp_path / "host.json"
    host.write_text(json.dumps(HOST))
    mdir = tmp_path / "m"
    mdir.mkdir()
    (mdir / "models.yaml").write_text(doc("mixtral", model_path=mixtral, backend="llama-server-cuda", gpus=[0],
                                          ctx_size=8192, parallel=1, n_cpu_moe="auto"))
    fit = cli("fit", mixtral, "--ctx-size", "8192", "--parallel", "1", "--gpus", "0", "--inventory", str(host),
              "--n-cpu-moe", "auto", "-o", "json").json()
    n = fit["n_cpu_moe"]
    assert n > 0 and fit["n_gpu_layers"] == 33
    r = cli("plan", str(mdir), "--inventory", str(host))
    assert r.code == 0, r.err
    note = next(line for line in r.out.splitlines() if "n_cpu_moe" in line)
    assert note.startswith(f"note: placement: mixtral: n_cpu_moe {n} (auto): {fit['cpu_moe_mib']:.0f} MiB of expert "
                           f"weights of layers 0-{n - 1} in host memory; model weights ")
    rendered = cli("render", str(mdir), "--inventory", str(host), "-o", "json").json()
    argv = rendered[0]["argv"]
    assert argv[argv.index("--n-cpu-moe") + 1] == str(n)


def test_all_keeps_every_layers_experts_on_the_host_and_renders_cpu_moe(tmp_path, mixtral):
    """`n_cpu_moe: all` = llama-server --cpu-moe: predicted as N = the block count (32 here), rendered as the
    switch, noted as `(all)`."""
    spec = dict(model_path=mixtral, backend="llama-server-cuda", gpus=[0], ctx_size=8192, parallel=1)
    p = run(tmp_path, doc("mixtral", **spec, n_cpu_moe="all"))
    entry = p.plan.ledger.entry("mixtral")
    experts = sum(expert_bytes_per_layer(read_gguf_facts(mixtral)))
    assert (entry.n_cpu_moe, entry.cpu_moe_bytes, entry.n_gpu_layers) == (32, experts, 33)
    assert entry.use["host"] >= experts and p.plan.get("mixtral").kind == START
    argv = p.desired.rendered["mixtral"].argv
    assert "--cpu-moe" in argv and "--n-cpu-moe" not in argv
    assert p.desired.rendered["mixtral"].placement.n_cpu_moe == "all"
    note = next(n for n in p.plan.ledger.notes if "n_cpu_moe" in n)
    assert note.startswith(f"mixtral: n_cpu_moe 32 (all): {experts / MIB:.0f} MiB of expert weights of layers 0-31 "
                           "in host memory; model weights ")
    # a running process started with `all` (its record) holds every layer's experts on the host
    want = p.wants["mixtral"]
    base = dict(spec_hash="old", argv=("llama-server",), port=want.port, backend=want.backend, gpus=want.gpus)
    seen = {"mixtral": Seen("mixtral", state=State.READY, running=True, **base, placement=Placed(33, [], "all"))}
    again = run(tmp_path, doc("mixtral", **spec, n_cpu_moe="all"), seen=seen)
    assert again.plan.ledger.entry("mixtral").cpu_moe_bytes == experts


def test_plan_says_auto_of_a_hub_source_not_read_yet_is_not_known(tmp_path, cli, monkeypatch):
    """#23: a hub GGUF offline (nothing read, nothing fetched): `plan` says n_cpu_moe: auto is not known yet and
    no --n-cpu-moe is guessed (tests/unit/desired/test_cpu_moe_hub.py: decided from the hub's header or file)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mdir = tmp_path / "m"
    mdir.mkdir()
    (mdir / "models.yaml").write_text(doc("mixtral", source="hf://org/mixtral-GGUF:Q4_0", backend="llama-server-cuda",
                                          n_cpu_moe="auto"))
    r = cli("plan", str(mdir), "--state-dir", str(tmp_path / "state"))
    assert r.code == 0, r.err
    lines = [line for line in (r.out + r.err).splitlines() if line.startswith("warning: mixtral: ")]
    assert len(lines) == 1 and lines[0].endswith(
        "; n_cpu_moe: auto is not known yet: it is chosen from the GGUF header once the hub's metadata is read or the "
        "file is fetched, before the model starts")
    assert "offline" in lines[0] and "--n-cpu-moe" not in r.out
