"""`spec.overrides` (issue 24 item 6): per-host values, validated at load like the fields they set, with
file:line: field (manifests/overrides.py)."""

from __future__ import annotations

from xgen_declare.manifests.load import load_paths

HEAD = "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: a}\nspec:\n  model_path: /m/x.gguf\n"


def problems(write, body: str) -> list[str]:
    write("a.yaml", HEAD + body)
    return [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems]


def test_a_valid_override_loads_and_keeps_its_values_as_written(write):
    write("a.yaml", HEAD + "  overrides:\n    - hosts: {matchLabels: {site: a}}\n      set: {n_gpu_layers: 20}\n")
    r = load_paths([str(write.root)])
    assert r.problems == []
    (o,) = r.models[0].spec.overrides
    assert o.set == {"n_gpu_layers": 20} and o.hosts.describe() == "site In [a]"
    assert r.models[0].spec.n_gpu_layers == -1  # the base spec is every host's until a host applies it


def test_each_value_is_checked_like_the_field_it_sets_under_its_own_path(write):
    assert problems(write, "  overrides:\n"
                           "    - hosts: {matchLabels: {site: a}}\n"
                           "      set: {ctx_size: 8192}\n"
                           "    - hosts: {matchLabels: {site: b}}\n"
                           "      set:\n"
                           "        n_gpu_layers: -5\n"
                           "        ctx_siz: 3\n"
                           "        flash_attn: maybe\n") == [
        '11: spec.overrides[1].set.n_gpu_layers: must be -1 or "all" (every layer), 0 (CPU only), a positive layer '
        'count, or "auto"',
        "13: spec.overrides[1].set.flash_attn: Input should be 'on', 'off' or 'auto' (use one of the listed values)",
        "12: spec.overrides[1].set.ctx_siz: unknown field `ctx_siz` (did you mean `ctx_size`?)",
    ]


def test_a_combination_the_override_makes_invalid_is_the_overrides(write):
    assert problems(write, "  gpus: [0, 1]\n  tensor_split: [1, 1]\n  overrides:\n"
                           "    - hosts: {matchLabels: {site: a}}\n"
                           "      set: {gpus: [0]}\n") == [
        "10: spec.overrides[0].set: makes spec.tensor_split invalid on its hosts: has 2 entries but gpus lists 1 "
        "GPU(s) (give one proportion per entry of gpus)"]
    assert problems(write, "  overrides:\n    - hosts: {}\n      set: {tensor_parallel_size: 2}\n") == [
        "8: spec.overrides[0].set.tensor_parallel_size: only applies to vLLM backends and would be ignored here "
        "(remove it, or use gpus + tensor_split for this backend)"]


def test_fields_that_say_where_a_model_runs_may_not_be_overridden(write):
    assert problems(write, "  overrides:\n    - hosts: {matchLabels: {site: a}}\n      set:\n"
                           "        hosts: {matchLabels: {site: b}}\n        name: b\n        ctx_size: 1\n") == [
        "9: spec.overrides[0].set.hosts: may not be overridden per host: hosts says which hosts run the model; an "
        "override is already for some of them (remove hosts from this override)",
        "10: spec.overrides[0].set.name: may not be overridden per host: metadata.name is the model's one name on "
        "every host (remove name from this override)"]


def test_the_selector_and_the_shape_of_an_override(write):
    assert problems(write, "  overrides:\n    - hosts: {matchExpressions: [{key: a, operator: Inn, values: [x]}]}\n"
                           "      set: {}\n    - set: {ctx_size: 1}\n") == [
        "7: spec.overrides[0].hosts.matchExpressions[0].operator: unknown operator 'Inn' (did you mean `In`?)",
        "8: spec.overrides[0].set: is empty (give the fields to set on those hosts, e.g. set: {n_gpu_layers: 20})",
        "9: spec.overrides[1].hosts: Field required (add `hosts`)"]


def test_hostile_shapes_are_problems_never_a_traceback(write):
    assert problems(write, "  overrides:\n    - hosts: {}\n      set: {1: 2}\n") == [
        "8: spec.overrides[0].set[1]: Input should be a valid string (write a string (quote it if YAML reads it as "
        "something else))"]
    assert problems(write, "  overrides:\n    - hosts: {}\n      set: [a]\n") == [
        "8: spec.overrides[0].set: Input should be a valid dictionary (write a YAML mapping (key: value))"]
    many = "".join("    - {hosts: {}, set: {ctx_size: 1}}\n" for _ in range(65))
    assert problems(write, "  overrides:\n" + many) == [
        "6: spec.overrides: List should have at most 64 items after validation, not 65"]
