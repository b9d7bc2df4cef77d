"""The memory ledger of a hub source not fetched yet (issue 23 item 6): placed from the hub's metadata with the
figures the same file gives on disk, said in the plan ("placement from hub metadata"); not read yet, or
hostile, it is "placement unknown" with the reason; once fetched the real files are used; without a lookup
(render, validate) nothing is asked."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

pytest.importorskip("gguf")

from xgen_declare.config import Config  # noqa: E402
from xgen_declare.desired.build import build_desired  # noqa: E402
from xgen_declare.inventory.model import Gpu  # noqa: E402
from xgen_declare.placement.gguf_facts import read_gguf_facts  # noqa: E402
from xgen_declare.placement.hub import NOT_READ, HubFacts  # noqa: E402
from xgen_declare.tools.tinygguf import write_tiny_gguf  # noqa: E402

from .test_render import inventory  # noqa: E402

C = "0123456789ab" + "c" * 28
SRC = "hf://org/t-GGUF:Q4_K_M"
GPU = [Gpu(index=0, vendor="nvidia", type="nvidia", name="T", memory_total_mib=2048, memory_free_mib=2048)]
BIG = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 32, "num_attention_heads": 32,
       "num_key_value_heads": 8, "hidden_size": 4096, "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.Q4_K_M.gguf")


def write(d, name: str, where: str, backend: str = "llama-server-cuda", extra: str = "  n_gpu_layers: auto\n"):
    d.mkdir(parents=True, exist_ok=True)
    key = "source" if where.startswith("hf://") else "model_path"
    (d / f"{name}.yaml").write_text(f"apiVersion: xgen/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n"
                                    f"  {key}: {json.dumps(where)}\n  backend: {backend}\n{extra}")
    return d


def ledger(d, **kw):
    return build_desired([str(d)], Config(), inventory("new", GPU), preview=True, **kw).ledger


def from_hub(facts):
    return lambda decl: facts


def test_a_gguf_from_the_hub_is_placed_as_the_same_file_on_disk(tmp_path, tiny):
    facts = dataclasses.replace(read_gguf_facts(str(tiny)), path=f"hf://org/t-GGUF@{C[:12]}/tiny.Q4_K_M.gguf")
    hub = ledger(write(tmp_path / "hub", "m", SRC), hub=from_hub(HubFacts(SRC, C, "tiny.Q4_K_M.gguf", facts=facts)))
    disk = ledger(write(tmp_path / "disk", "m", str(tiny)))
    a, b = hub.entry("m"), disk.entry("m")
    assert (a.source, a.use, a.n_gpu_layers, a.resolved) == (b.source, b.use, b.n_gpu_layers, b.resolved)
    assert a.source == "predicted" and a.use["GPU0"] > 0 and a.resolved
    assert hub.warnings == {} and f"m: placement from hub metadata ({SRC} at commit {C[:12]}), before its files " \
        "are fetched" in hub.notes


def test_not_read_yet_or_hostile_is_placement_unknown_with_the_reason(tmp_path):
    d = write(tmp_path, "m", SRC)
    assert ledger(d, hub=from_hub(None)).warnings == {"m": f"placement unknown ({NOT_READ}): {SRC}; n_gpu_layers: "
                                                           "auto is left to llama-server's --fit"}
    why = "hf://org/t-GGUF@0123456789ab/t.gguf: implausible GGUF header: 2 tensors and 70000 metadata entries"
    got = ledger(d, hub=from_hub(HubFacts(SRC, C, reason=why)))
    assert got.warnings["m"] == f"placement unknown ({why}): {SRC}; n_gpu_layers: auto is left to llama-server's --fit"
    assert got.entry("m").source == "unknown"


def test_once_fetched_the_real_file_is_used_and_the_hub_is_not_asked(tmp_path, tiny):
    def never(decl):
        raise AssertionError("the hub's metadata asked for a fetched model")

    got = ledger(write(tmp_path, "m", SRC), hub=never, local_path=lambda decl: str(tiny))
    assert got.warnings == {} and got.entry("m").source == "predicted"
    assert not any("hub metadata" in n for n in got.notes)


def test_without_a_lookup_nothing_is_asked_and_the_warning_is_as_before(tmp_path):
    got = ledger(write(tmp_path, "m", SRC))  # render, validate: no hub lookup at all
    assert got.warnings["m"].startswith("org/t-GGUF:Q4_K_M is a HuggingFace repository: its size is unknown until")


def test_a_vllm_model_from_the_hub_gets_the_checks_of_its_fetched_directory(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(BIG))
    with open(model / "model.safetensors", "wb") as f:
        f.truncate(3 << 30)  # a sparse 3 GiB file
    extra = "  gpu_memory_utilization: 0.9\n"
    facts = HubFacts("hf://org/big", C, config=BIG, weights=os.path.getsize(model / "model.safetensors"))
    hub = ledger(write(tmp_path / "hub", "v", "hf://org/big", "vllm-cuda", extra), hub=from_hub(facts))
    disk = ledger(write(tmp_path / "disk", "v", str(model), "vllm-cuda", extra))
    a, b = hub.entry("v"), disk.entry("v")
    assert a.blocked == b.blocked and a.blocked.startswith("weights 3.0 GiB + KV cache for max_model_len 131072 ")
    unknown = ledger(tmp_path / "hub", hub=from_hub(HubFacts("hf://org/big", C, reason="no config.json in org/big")))
    assert unknown.warnings["v"] == ("placement unknown (no config.json in org/big): hf://org/big: vLLM pre-checks "
                                     "skipped")
    assert not (unknown.entry("v").blocked or "").startswith("weights")  # no pre-check: only the reservation
