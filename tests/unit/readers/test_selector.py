"""spec.hosts selectors (readers/selector.py): Kubernetes label-selector semantics on plain data, every
problem reported at once with its field and a hint."""

from __future__ import annotations

import pytest

from xgen_declare.readers.selector import Requirement, Selector, disjoint, parse_selector

MI300X = {"hostname": "mi300x-1", "arch": "x86_64", "gpu.vendor": "amd", "gpu.model": "AMD Instinct MI300X",
          "gpu.count": "8", "gpu.memory_gib": "191"}
STRIX = {"hostname": "strix", "arch": "x86_64", "gpu.vendor": "amd", "gpu.model": "Radeon 8060S",
         "gpu.count": "1", "gpu.memory_gib": "96", "maintenance": "yes"}
CPU = {"hostname": "ci", "arch": "aarch64", "gpu.count": "0"}


def select(data) -> Selector:
    sel, issues = parse_selector(data)
    assert issues == [] and sel is not None
    return sel


def hosts(data) -> list[str]:
    sel = select(data)
    return [h["hostname"] for h in (MI300X, STRIX, CPU) if sel.matches(h)]


@pytest.mark.parametrize("data, chosen", [
    (None, ["mi300x-1", "strix", "ci"]),                                        # no hosts: every host
    ({}, ["mi300x-1", "strix", "ci"]),                                          # empty selector: every host
    ({"matchLabels": {"gpu.vendor": "amd"}}, ["mi300x-1", "strix"]),
    ({"matchLabels": {"gpu.vendor": "amd", "gpu.count": 8}}, ["mi300x-1"]),     # AND; 8 is the label "8"
    ({"matchExpressions": [{"key": "gpu.model", "operator": "In", "values": ["Radeon 8060S", "x"]}]}, ["strix"]),
    ({"matchExpressions": [{"key": "gpu.vendor", "operator": "NotIn", "values": ["nvidia"]}]},
     ["mi300x-1", "strix", "ci"]),                                              # NotIn matches a missing key
    ({"matchExpressions": [{"key": "gpu.vendor", "operator": "Exists"}]}, ["mi300x-1", "strix"]),
    ({"matchExpressions": [{"key": "maintenance", "operator": "DoesNotExist"}]}, ["mi300x-1", "ci"]),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["100"]}]}, ["mi300x-1"]),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Lt", "values": [100]}]}, ["strix"]),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["95.5"]}]}, ["mi300x-1", "strix"]),
    ({"matchExpressions": [{"key": "hostname", "operator": "Gt", "values": ["1"]}]}, []),  # not a number: no
    ({"matchLabels": {"gpu.vendor": "amd"},
      "matchExpressions": [{"key": "maintenance", "operator": "DoesNotExist"}]}, ["mi300x-1"]),
])
def test_kubernetes_semantics(data, chosen):
    assert hosts(data) == chosen


def test_the_reason_a_host_is_not_selected():
    sel = select({"matchLabels": {"gpu.vendor": "amd"},
                  "matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["100"]}]})
    assert sel.requirements == (Requirement("gpu.vendor", "In", ("amd",)),
                                Requirement("gpu.memory_gib", "Gt", ("100",)))
    assert sel.mismatch(MI300X) is None
    assert sel.mismatch(STRIX) == "gpu.memory_gib > 100 (this host: 96)"
    assert sel.mismatch(CPU) == "gpu.vendor In [amd] (this host: no gpu.vendor label)"


@pytest.mark.parametrize("data, issues", [
    ("amd", [("spec.hosts", "must be a mapping", "e.g. {matchLabels: {gpu.vendor: amd}}")]),
    ({"matchLabel": {"a": "b"}}, [("spec.hosts.matchLabel", "unknown field", "did you mean `matchLabels`?")]),
    ({"matchExpressions": [{"key": "gpu.vendor", "operator": "Equals", "values": ["amd"]}]},
     [("spec.hosts.matchExpressions[0].operator", "unknown operator 'Equals'",
       "use one of In, NotIn, Exists, DoesNotExist, Gt, Lt")]),
    ({"matchExpressions": [{"key": "gpu.vendor", "operator": "in", "values": ["amd"]}]},
     [("spec.hosts.matchExpressions[0].operator", "unknown operator 'in'", "did you mean `In`?")]),
    ({"matchExpressions": [{"key": "gpu.vendor", "operator": "Exists", "values": ["amd"]}]},
     [("spec.hosts.matchExpressions[0].values", "Exists takes no values", "remove values")]),
    ({"matchExpressions": [{"key": "gpu.vendor", "operator": "In", "values": []}]},
     [("spec.hosts.matchExpressions[0].values", "In needs at least one value", "e.g. values: [MI300X]")]),
    ({"matchExpressions": [{"key": "gpu.count", "operator": "Gt", "values": ["2", "3"]}]},
     [("spec.hosts.matchExpressions[0].values", "Gt needs exactly one number, got ['2', '3']",
       'e.g. values: ["40"]')]),
    ({"matchExpressions": [{"key": "gpu.count", "operator": "Lt", "values": ["many"]}]},
     [("spec.hosts.matchExpressions[0].values", "Lt needs exactly one number, got ['many']", 'e.g. values: ["40"]')]),
    ({"matchExpressions": [{"operator": "Exists"}, "gpu.count > 2"]},
     [("spec.hosts.matchExpressions[0].key", "missing", "add `key`, e.g. key: gpu.vendor"),
      ("spec.hosts.matchExpressions[1]", "must be a mapping", "e.g. {key: gpu.model, operator: In, values: [MI300X]}")]),
    ({"matchLabels": {"-bad": "x", "ok": {"nested": 1}}},
     [("spec.hosts.matchLabels.-bad", "'-bad' is not a label key (letters, digits and . _ / -, starting and ending "
       "with a letter or digit, at most 253 characters)", "e.g. gpu.vendor: amd"),
      ("spec.hosts.matchLabels.ok", "{'nested': 1} is not a label value (a string, a number or true/false)",
       "e.g. gpu.vendor: amd")]),
])
def test_every_problem_names_its_field(data, issues):
    sel, found = parse_selector(data)
    assert sel is None and found == issues


def test_yaml_scalars_are_label_text():
    sel = select({"matchLabels": {"gpu.count": 2, "spot": True, "gpu.memory_gib": 23.5}})
    assert sel.requirements == (Requirement("gpu.count", "In", ("2",)), Requirement("spot", "In", ("true",)),
                                Requirement("gpu.memory_gib", "In", ("23.5",)))


def _sel(data):
    selector, issues = parse_selector(data)
    assert issues == []
    return selector


@pytest.mark.parametrize("a, b, apart", [
    ({"matchLabels": {"gpu.vendor": "amd"}}, {"matchLabels": {"gpu.vendor": "nvidia"}}, True),
    ({"matchLabels": {"gpu.vendor": "amd"}}, {"matchLabels": {"gpu.vendor": "amd"}}, False),
    ({"matchLabels": {"gpu.vendor": "amd"}}, {"matchLabels": {"site": "x"}}, False),  # an AMD host at site x
    ({"matchLabels": {"site": "a"}}, {"matchExpressions": [{"key": "site", "operator": "NotIn", "values": ["a", "b"]}]},
     True),
    ({"matchLabels": {"site": "a"}}, {"matchExpressions": [{"key": "site", "operator": "NotIn", "values": ["b"]}]},
     False),
    ({"matchExpressions": [{"key": "spot", "operator": "Exists"}]},
     {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["40"]}]},
     {"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Lt", "values": ["40"]}]}, True),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["40"]}]},
     {"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Lt", "values": ["48"]}]}, False),
    ({"matchLabels": {"gpu.memory_gib": 24}},
     {"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["40"]}]}, True),
    ({"matchLabels": {"gpu.memory_gib": 80}},
     {"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["40"]}]}, False),
    ({}, {"matchLabels": {"gpu.vendor": "amd"}}, False),
    (None, {"matchLabels": {"gpu.vendor": "amd"}}, False),
])
def test_disjoint_selectors(a, b, apart):
    sa = None if a is None else _sel(a)
    sb = _sel(b)
    assert disjoint(sa, sb) is apart and disjoint(sb, sa) is apart
