"""`spec.hosts` (issue 24 item 6): a label selector on the manifest, validated like every other field
(file:line: field: message (hint)), every problem at once, via readers/selector.py."""

from __future__ import annotations

from xgen_declare.manifests.load import load_paths
from xgen_declare.readers.selector import Requirement

HEAD = "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: a}\nspec:\n  model_path: /m/x.gguf\n"


def load(write, hosts: str):
    write("a.yaml", HEAD + hosts)
    return load_paths([str(write.root)])


def problems(write, hosts: str) -> list[str]:
    return [p.format()[len(p.file) + 1:] for p in load(write, hosts).problems]


def test_no_hosts_is_every_host(write):
    write("a.yaml", HEAD)
    assert load_paths([str(write.root)]).models[0].spec.hosts is None


def test_match_labels_and_expressions_are_one_selector(write):
    r = load(write, "  hosts:\n    matchLabels: {gpu.vendor: amd, gpu.count: 2}\n    matchExpressions:\n"
                    "      - {key: gpu.memory_gib, operator: Gt, values: [40]}\n")
    assert r.problems == []
    hosts = r.models[0].spec.hosts
    assert hosts.requirements == (Requirement("gpu.vendor", "In", ("amd",)), Requirement("gpu.count", "In", ("2",)),
                                  Requirement("gpu.memory_gib", "Gt", ("40",)))
    assert hosts.describe() == "gpu.vendor In [amd], gpu.count In [2], gpu.memory_gib > 40"
    # serialized in the canonical form, which reads back to the same selector (the API, `render -o json`)
    dumped = r.models[0].spec.model_dump(mode="json")["hosts"]
    assert dumped["matchExpressions"][2] == {"key": "gpu.memory_gib", "operator": "Gt", "values": ["40"]}
    assert load(write, "  hosts: " + __import__("json").dumps(dumped) + "\n").models[0].spec.hosts == hosts


def test_every_problem_with_its_line_and_field(write):
    assert problems(write, "  hosts:\n    matchLabels:\n      gpu.vendor: amd\n      'bad key': x\n"
                           "    matchExpressions:\n      - {key: gpu.memory_gib, operator: gt, values: ['40']}\n"
                           "      - key: gpu.model\n        operator: In\n    extra: 1\n") == [
        "14: spec.hosts.extra: unknown field (use matchLabels and/or matchExpressions)",
        "9: spec.hosts.matchLabels.bad key: 'bad key' is not a label key (letters, digits and . _ / -, starting and "
        "ending with a letter or digit, at most 253 characters) (e.g. gpu.vendor: amd)",
        "11: spec.hosts.matchExpressions[0].operator: unknown operator 'gt' (did you mean `Gt`?)",
        "12: spec.hosts.matchExpressions[1].values: In needs at least one value (e.g. values: [MI300X])"]


def test_unknown_operator_and_bad_numbers(write):
    assert problems(write, "  hosts:\n    matchExpressions:\n      - {key: a, operator: Near, values: [x]}\n"
                           "      - {key: gpu.memory_gib, operator: Lt, values: [big]}\n") == [
        "8: spec.hosts.matchExpressions[0].operator: unknown operator 'Near' (use one of In, NotIn, Exists, "
        "DoesNotExist, Gt, Lt)",
        "9: spec.hosts.matchExpressions[1].values: Lt needs exactly one number, got ['big'] (e.g. values: [\"40\"])"]


def test_hosts_not_a_mapping(write):
    assert problems(write, "  hosts: [gpu-box-1]\n") == [
        "6: spec.hosts: must be a mapping (e.g. {matchLabels: {gpu.vendor: amd}})"]


def test_an_invalid_selector_makes_the_model_invalid_not_unknown(write):
    r = load(write, "  hosts: {matchLabels: {gpu.vendor: [amd]}}\n")
    assert r.models == [] and list(r.invalid_names) == ["a"]  # the plan keeps its last good process


def test_one_port_for_models_on_different_hosts_but_not_on_the_same(write):
    amd = "  port: 8080\n  hosts: {matchLabels: {gpu.vendor: amd}}\n"
    write("a.yaml", HEAD + amd)
    write("b.yaml", HEAD.replace("name: a", "name: b") + "  port: 8080\n  hosts: {matchLabels: {gpu.vendor: nvidia}}\n")
    r = load_paths([str(write.root)])
    assert r.problems == [] and sorted(m.name for m in r.models) == ["a", "b"]
    write("c.yaml", HEAD.replace("name: a", "name: c") + "  port: 8080\n")  # every host: clashes with both
    r = load_paths([str(write.root)])
    assert sorted(m.name for m in r.models) == []
    assert sorted(p.format()[len(p.file) + 1:] for p in r.problems) == [  # each with the models it meets
        "6: spec.port: port 8080 is claimed by several models (a, b, c) (give each model its own port or omit port "
        "to get one assigned)",
        "6: spec.port: port 8080 is claimed by several models (a, c) (give each model its own port or omit port to "
        "get one assigned)",
        "6: spec.port: port 8080 is claimed by several models (b, c) (give each model its own port or omit port to "
        "get one assigned)"]


def test_hosts_does_not_go_with_a_model_across_hosts(write):
    write("a.yaml", HEAD.replace("/m/x.gguf", "org/big") + "  backend: vllm-cuda\n  nodes: 2\n  distributed: ray\n"
          "  ray: {head: h1, workers: [h2]}\n  hosts: {matchLabels: {site: a}}\n")
    assert [p.format()[len(p.file) + 1:] for p in load_paths([str(write.root)]).problems] == [
        "10: spec.hosts: does not go with a model across hosts: spec.ray already names the hosts, and a host the "
        "selector left out would not run its part (remove hosts)"]
