"""`n_cpu_moe: auto` with a hub source (#23): the store fetches the GGUF before the model starts, so `auto`
is decided from the header the hub serves (placement from hub metadata) or from the fetched file, with the
same N as the same file on disk; while neither is known it is "not known yet" in the ledger and the render,
and no --n-cpu-moe is guessed. Sparse Mixtral-8x7B-shaped GGUF (real header and tensor table)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.desired.demands import CPU_MOE_NOT_KNOWN
from xgen_declare.inventory.model import Inventory
from xgen_declare.placement.gguf_facts import read_gguf_facts
from xgen_declare.placement.hub import NOT_READ, HubFacts
from xgen_declare.testing.synthetic import write_sparse_gguf

HOST = {  # one 24 GiB GPU: Mixtral Q4_0 (~24.6 GiB of weights) does not fit it with every expert
    "gpus": [{"index": 0, "vendor": "nvidia", "type": "nvidia", "memory_total_mib": 24564, "memory_free_mib": 24000}],
    "cpu": {"memory_total_mib": 131072, "memory_available_mib": 120000},
    "backends": [{"name": "llama-server-cuda", "available": True, "binary": "/bin/true", "dialect": "new"}],
}
C = "0123456789ab" + "c" * 28
SRC = "hf://org/mixtral-GGUF:Q4_0"


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    return str(write_sparse_gguf(tmp_path_factory.mktemp("moe") / "mixtral.Q4_0.gguf", "mixtral-8x7b", "Q4_0",
                                 vocab=False))


def write(d, where: str, key: str = "source", name: str = "m"):
    d.mkdir(parents=True, exist_ok=True)
    spec = {key: where, "backend": "llama-server-cuda", "gpus": [0], "ctx_size": 8192, "parallel": 1,
            "n_cpu_moe": "auto"}
    (d / f"{name}.yaml").write_text(f"apiVersion: xgen/v1\nkind: Model\nmetadata: {{name: {name}}}\n"
                                    f"spec: {json.dumps(spec)}\n")
    return d


def desired(d, **kw):
    return build_desired([str(d)], Config(), Inventory.model_validate(HOST), preview=True, **kw)


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def hub_of(path: str):
    facts = dataclasses.replace(read_gguf_facts(path), path=f"hf://org/mixtral-GGUF@{C[:12]}/mixtral.Q4_0.gguf")
    return lambda decl: HubFacts(SRC, C, "mixtral.Q4_0.gguf", facts=facts)


@pytest.mark.parametrize("key, where", [("source", SRC), ("model_path", "org/mixtral-GGUF:Q4_0")])
def test_auto_is_chosen_from_the_hubs_header_as_from_the_same_file_on_disk(tmp_path, mixtral, key, where):
    hub = desired(write(tmp_path / "hub", where, key), hub=hub_of(mixtral))
    disk = desired(write(tmp_path / "disk", mixtral, "model_path"))
    a, b = hub.ledger.entry("m"), disk.ledger.entry("m")
    assert b.n_cpu_moe and b.resolved  # the file on disk needs some experts in host memory
    assert (a.n_cpu_moe, a.n_gpu_layers, a.resolved, a.cpu_moe_bytes) == \
        (b.n_cpu_moe, b.n_gpu_layers, b.resolved, b.cpu_moe_bytes)
    assert _flag(hub.rendered["m"].argv, "--n-cpu-moe") == str(b.n_cpu_moe)
    assert hub.ledger.warnings == {} and CPU_MOE_NOT_KNOWN not in hub.rendered["m"].warnings


def test_once_fetched_auto_is_chosen_from_the_file(tmp_path, mixtral):
    def never(decl):
        raise AssertionError("the hub's metadata asked for a fetched model")

    got = desired(write(tmp_path, SRC), hub=never, local_path=lambda decl: mixtral)
    disk = desired(write(tmp_path / "disk", mixtral, "model_path"))
    n = disk.ledger.entry("m").n_cpu_moe
    assert got.ledger.entry("m").n_cpu_moe == n and n > 0
    argv = got.rendered["m"].argv
    assert _flag(argv, "--n-cpu-moe") == str(n) and _flag(argv, "--model") == mixtral


@pytest.mark.parametrize("hub", [None, lambda decl: None,
                                 lambda decl: HubFacts(SRC, C, reason="offline: the hub's metadata is not read")])
def test_not_known_yet_is_said_and_never_guessed(tmp_path, hub):
    got = desired(write(tmp_path, SRC), **({"hub": hub} if hub else {}))
    r = got.rendered["m"]
    assert "--n-cpu-moe" not in r.argv and "--cpu-moe" not in r.argv
    assert CPU_MOE_NOT_KNOWN in r.warnings
    assert got.ledger.warnings["m"].endswith(f"; {CPU_MOE_NOT_KNOWN}")
    assert CPU_MOE_NOT_KNOWN == ("n_cpu_moe: auto is not known yet: it is chosen from the GGUF header once the "
                                 "hub's metadata is read or the file is fetched, before the model starts")
    if hub is not None and hub(None) is None:
        assert got.ledger.warnings["m"].startswith(f"placement unknown ({NOT_READ}): {SRC}; ")


def test_a_local_file_that_cannot_be_read_keeps_its_own_warning(tmp_path):
    got = desired(write(tmp_path, str(tmp_path / "missing.gguf"), "model_path"))
    assert CPU_MOE_NOT_KNOWN not in got.rendered["m"].warnings
    assert any(w.startswith("n_cpu_moe: auto was not resolved (placement unknown)") for w in got.rendered["m"].warnings)
