"""One test per validation rule, asserting the exact message a user sees."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from xgen_declare.manifests.load import load_paths


def problems_of(write, text: str, name: str = "m.yaml") -> list[str]:
    write(name, text)
    return [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems]


def only(write, text: str) -> str:
    found = problems_of(write, text)
    assert len(found) == 1, found
    return found[0]  # "LINE: field: message (hint)"


def test_valid_manifest_has_no_problems(write):
    assert problems_of(write, model_yaml("ok", ctx_size=4096, gpus=[0, 1], tensor_split=[3.0, 1.0])) == []


@pytest.mark.parametrize("value", [0, 1.5, -0.1])
def test_gpu_memory_utilization_range(write, value):
    msg = only(write, model_yaml(model_path="org/model", gpu_memory_utilization=value))
    assert msg == ("7: spec.gpu_memory_utilization: must be greater than 0 and at most 1 "
                   "(a fraction of each GPU's memory, e.g. 0.9)")


def test_tensor_split_negative(write):
    assert only(write, model_yaml(tensor_split=[1.0, -1.0])) == \
        "6: spec.tensor_split: entries must be >= 0 (proportions per GPU, e.g. [3.0, 1.0])"


def test_tensor_split_all_zero(write):
    assert only(write, model_yaml(tensor_split=[0, 0])) == \
        "6: spec.tensor_split: at least one entry must be greater than 0"


def test_tensor_split_length_must_match_gpus(write):
    assert only(write, model_yaml(gpus=[0, 1, 2], tensor_split=[1.0, 1.0])) == \
        "7: spec.tensor_split: has 2 entries but gpus lists 3 GPU(s) (give one proportion per entry of gpus)"


def test_main_gpu_is_a_position_in_gpus(write):
    assert only(write, model_yaml(gpus=[4, 5], main_gpu=2)) == \
        ("7: spec.main_gpu: is 2 but gpus lists 2 GPU(s) (main_gpu is a position in gpus, so use 0..1)")


def test_tp_times_pp_needs_enough_gpus(write):
    assert only(write, model_yaml(model_path="org/model", gpus=[0, 1], tensor_parallel_size=2,
                                  pipeline_parallel_size=2)) == \
        ("8: spec.tensor_parallel_size: tensor_parallel_size x pipeline_parallel_size = 4 needs 4 GPUs but gpus "
         "lists 2 (list more GPUs or lower the sizes)")


def test_gguf_with_vllm_backend(write):
    assert only(write, model_yaml(model_path="/m/a.gguf", backend="vllm-cuda")) == \
        ("7: spec.backend: vllm-cuda cannot serve a GGUF file (use a llama-server backend, llama-cpp-python "
         "or backend: auto)")


def test_llama_backend_needs_gguf(write):
    assert only(write, model_yaml(model_path="org/model", backend="llama-server-cpu")) == \
        ("6: spec.model_path: backend llama-server-cpu needs a .gguf file, or a HuggingFace repository of them such "
         "as org/name-GGUF or org/name:QUANT (use a vllm backend for other HuggingFace models)")


def test_vllm_only_field_on_llama_model(write):
    assert only(write, model_yaml(max_model_len=4096)) == \
        "6: spec.max_model_len: only applies to vLLM backends and would be ignored here (remove it, or use ctx_size for this backend)"


def test_llama_only_field_on_vllm_model(write):
    assert only(write, model_yaml(model_path="org/model", n_gpu_layers=20)) == \
        "7: spec.n_gpu_layers: only applies to llama.cpp backends and would be ignored here (remove it)"


def test_explicit_defaults_of_the_other_family_are_accepted(write):
    # Seed clients send every field; default values are not "set".
    assert problems_of(write, model_yaml(max_model_len=None, gpu_memory_utilization=0.9,
                                         tensor_parallel_size=1, trust_remote_code=False)) == []


@pytest.mark.parametrize("name", ["Bad", "-lead", "a_b", "x" * 64, ""])
def test_name_pattern(write, name):
    text = model_yaml().replace("name: m1", f"name: {name!r}" if name else 'name: ""')
    msg = only(write, text)
    assert msg.startswith("4: metadata.name: must match ^[a-z0-9][a-z0-9-]{0,62}$")


def test_names_unique_across_directory(write):
    write("a.yaml", model_yaml("dup"))
    write("sub/b.yaml", model_yaml("dup"))
    found = [p.format() for p in load_paths([str(write.root)]).problems]
    assert len(found) == 2, found
    assert all("metadata.name: name 'dup' is declared more than once" in f for f in found)
    assert all(f.endswith("(give each model a unique name)") for f in found)


def test_explicit_port_claimed_twice(write):
    write("a.yaml", model_yaml("a", port=8011))
    write("b.yaml", model_yaml("b", port=8011))
    result = load_paths([str(write.root)])
    assert [p.field for p in result.problems] == ["spec.port", "spec.port"]
    assert "port 8011 is claimed by several models (a, b)" in result.problems[0].message
    assert result.models == []


def test_unknown_field_suggests_closest(write):
    assert only(write, model_yaml(n_gpu_layer=5)) == \
        "6: spec.n_gpu_layer: unknown field `n_gpu_layer` (did you mean `n_gpu_layers`?)"


def test_unknown_kind_and_api_version(write):
    assert only(write, model_yaml().replace("kind: Model", "kind: Modle")) == \
        "2: kind: unknown kind 'Modle' (use apiVersion: xgen/v1 and kind: Model)"
    write("m.yaml", model_yaml().replace("xgen/v1", "xgen/v2"))
    assert "1: apiVersion: unknown apiVersion 'xgen/v2'" in problems_of(write, model_yaml().replace("xgen/v1", "xgen/v2"))[0]


def test_missing_model_path(write):
    assert only(write, "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: a}\nspec: {backend: auto}\n") == \
        ("4: spec.model_path: is missing: give model_path or source (e.g. model_path: /models/x.gguf or "
         "source: hf://org/model-GGUF:Q4_K_M)")


def test_wrong_type(write):
    assert only(write, model_yaml(ctx_size="big")) == \
        "6: spec.ctx_size: Input should be a valid integer, unable to parse string as an integer (write a whole number)"


def test_literal_choice(write):
    assert only(write, model_yaml(split_mode="diagonal")) == \
        "6: spec.split_mode: Input should be 'none', 'layer', 'row' or 'tensor' (use one of the listed values)"


def test_n_gpu_layers_below_minus_one(write):
    assert only(write, model_yaml(n_gpu_layers=-2)).startswith("6: spec.n_gpu_layers: must be -1 or \"all\"")


def test_newline_in_value_rejected(write):
    assert only(write, model_yaml(extra_args=["--a", "b\n--evil"])) == \
        "6: spec.extra_args: each item must not contain control characters (\\n at position 1): remove it " \
        "(newlines, NUL bytes and terminal escapes are refused, a tab is allowed)"


CONTROL = "must not contain control characters ({} at position {}): remove it (newlines, NUL bytes and terminal " \
          "escapes are refused, a tab is allowed)"


@pytest.mark.parametrize("field, value, shown, where", [
    ("alias", ["ok", "x\x1b]0;pwned\x07"], "\\x1b", 1),   # OSC: retitles an operator's terminal
    ("alias", ["a\x9b31m"], "\\x9b", 1),                    # C1 CSI
    ("extra_args", ["--x", "\x1b[2J"], "\\x1b", 0),         # CSI: clears the screen
    ("model_path", "/m/a\x07.gguf", "\\x07", 4),
    ("hf_file", "a\x7f.gguf", "\\x7f", 1),
])
def test_control_characters_in_argv_values_are_refused(write, field, value, shown, where):
    """#21 finding 17: every value that becomes argv refuses C0 (but tab), DEL and C1."""
    what = "each item" if isinstance(value, list) else "value"
    assert only(write, model_yaml(**{field: value})) == f"6: spec.{field}: {what} " + CONTROL.format(shown, where)


def test_a_tab_in_an_argv_value_is_allowed(write):
    assert problems_of(write, model_yaml(alias=["a\tb"], extra_args=["--x", "1\t2"])) == []


FLAG = "must not start with '-': a backend would read it as a command-line flag"
PATH_HINT = "write ./ before a file name that starts with '-'"
HOST_HINT = "give a host name or address"
RPC = {"backend": "llama-server-cpu", "rpc_server_host": "box-1"}
RAY = {"model_path": "org/m", "nodes": 2, "distributed": "ray"}
INJECTIONS = [  # (spec, line, field, hint): every value that lands in argv as a positional or a flag's value
    ({"model_path": "--trust-remote-code"}, 6, "spec.model_path", PATH_HINT),
    ({"model_path": "--model=evil/repo"}, 6, "spec.model_path", PATH_HINT),
    ({"model_path": "-", "backend": "vllm-cpu"}, 6, "spec.model_path", PATH_HINT),
    ({"alias": ["ok", "--trust-remote-code"]}, 6, "spec.alias[1]", "start each alias with a letter or digit"),
    ({"host": "--ssl-keyfile=/etc/shadow"}, 6, "spec.host", HOST_HINT),
    ({"api_key_file": "-k"}, 6, "spec.api_key_file", PATH_HINT),
    ({"binary": "-c"}, 6, "spec.binary", "give the executable's path"),
    ({**RPC, "rpc_workers": [{"host": "-x", "port": 50052, "bind": "0.0.0.0"}]}, 8, "spec.rpc_workers[0].host",
     HOST_HINT),
    ({**RPC, "rpc_workers": [{"host": "box-2", "port": 50052, "bind": "--evil"}]}, 8, "spec.rpc_workers[0].bind",
     HOST_HINT),
    ({**RPC, "rpc_server_host": "-x", "rpc_workers": [{"host": "box-2", "port": 1, "bind": "0.0.0.0"}]}, 7,
     "spec.rpc_server_host", HOST_HINT),
    ({**RAY, "ray": {"head": "--address=evil:1", "workers": ["b"]}}, 9, "spec.ray.head", HOST_HINT),
    ({**RAY, "ray": {"head": "a", "workers": ["b", "-w"]}}, 9, "spec.ray.workers[1]", HOST_HINT),
    ({**RAY, "ray": {"head": "a", "workers": ["b"], "head_address": "-h"}}, 9, "spec.ray.head_address", HOST_HINT),
]


@pytest.mark.parametrize("spec,line,field,hint", INJECTIONS, ids=[c[2] + ":" + str(i) for i, c in enumerate(INJECTIONS)])
def test_values_that_land_in_argv_never_start_with_a_dash(write, spec, line, field, hint):
    """`model_path: --model=evil/repo` was vLLM's `serve --model=evil/repo`: a flag, not a model."""
    assert only(write, model_yaml(**spec)) == f"{line}: {field}: {FLAG} ({hint})"


def test_a_dash_inside_a_value_is_fine(write):
    assert problems_of(write, model_yaml(model_path="./-x.gguf", alias=["a-b"], host="my-host",
                                         api_key_file="/run/-key")) == []


def test_pooling_needs_embedding(write):
    assert only(write, model_yaml(pooling="mean")) == \
        "6: spec.pooling: only applies to server_type: embedding (remove it or set server_type)"


def test_all_problems_of_all_files_in_one_run(write):
    write("a.yaml", model_yaml("a", n_gpu_layer=1))
    write("b.yaml", "a: [1, 2\n")
    write("c.yaml", model_yaml("c", split_mode="x") + "---\n" + model_yaml("d", ctx_size="y"))
    result = load_paths([str(write.root)])
    assert sorted((p.file.rsplit("/", 1)[1], p.line) for p in result.problems) == \
        [("a.yaml", 6), ("b.yaml", 2), ("c.yaml", 6), ("c.yaml", 14)]


@pytest.mark.parametrize("field, value, where", [("stop_grace", ".inf", "spec.stop_grace"),
                                                 ("ready_timeout", ".nan", "spec.ready_timeout"),
                                                 ("tensor_split", "[1.0, .nan]", "spec.tensor_split[1]"),
                                                 ("gpu_memory_utilization", "-.inf", "spec.gpu_memory_utilization")])
def test_non_finite_numbers(write, field, value, where):
    text = model_yaml().rstrip("\n") + f"\n  {field}: {value}\n"
    assert problems_of(write, text)[0] == f"7: {where}: Input should be a finite number"


def test_idle_timeout_must_be_finite(write):
    assert only(write, model_yaml(activation="on-demand", idle_timeout="inf")) == (
        '7: spec.idle_timeout: must be finite (a duration such as "15m", "30s", "1h30m", or a number of seconds) '
        "(leave it unset to never stop for idleness)")
