"""Which models this host serves (desired/hosts.py, issue 24 item 6): spec.hosts from a manifest against the
labels detected from an inventory plus its `labels:`; then build_desired leaves the others unrendered, with
no port and outside the memory ledger."""

from __future__ import annotations

import pytest

from tests.conftest import model_yaml
from xgen_declare.config import Config
from xgen_declare.desired.build import build_desired
from xgen_declare.desired.hosts import select_for_host
from xgen_declare.inventory.labels import host_labels
from xgen_declare.inventory.model import Gpu, Inventory
from xgen_declare.manifests.load import load_paths

MI300X = Inventory(hostname="mi300x-1", arch="x86_64", labels={"site": "lab-2"},
                   gpus=[Gpu(index=i, vendor="amd", name="AMD Instinct MI300X", type="amd_cdna",
                             memory_total_mib=196592) for i in range(2)])
LAPTOP = Inventory(hostname="laptop", arch="aarch64")


def chosen(write, inventory: Inventory, **selectors) -> dict[str, str | None]:
    for name, hosts in selectors.items():
        write(f"{name}.yaml", model_yaml(name, hosts=hosts))
    load = load_paths([str(write.root)])
    assert load.problems == []
    here, elsewhere = select_for_host(load.models, host_labels(inventory))
    return {**{d.name: None for d in here}, **elsewhere}


def test_labels_of_an_inventory():
    assert host_labels(MI300X) == {"arch": "x86_64", "hostname": "mi300x-1", "gpu.count": "2", "gpu.vendor": "amd",
                                   "gpu.model": "AMD Instinct MI300X", "gpu.memory_gib": "191", "site": "lab-2"}


@pytest.mark.parametrize("hosts, why", [
    (None, None),
    ({}, None),
    ({"matchLabels": {"gpu.vendor": "amd", "site": "lab-2"}}, None),
    ({"matchLabels": {"gpu.vendor": "nvidia"}}, "gpu.vendor In [nvidia] (this host: amd)"),
    ({"matchLabels": {"gpu.count": 2}}, None),
    ({"matchExpressions": [{"key": "gpu.model", "operator": "In", "values": ["AMD Instinct MI300X", "x"]}]}, None),
    ({"matchExpressions": [{"key": "gpu.model", "operator": "NotIn", "values": ["AMD Instinct MI300X"]}]},
     "gpu.model NotIn [AMD Instinct MI300X] (this host: AMD Instinct MI300X)"),
    ({"matchExpressions": [{"key": "maintenance", "operator": "NotIn", "values": ["true"]}]}, None),
    ({"matchExpressions": [{"key": "site", "operator": "Exists"}]}, None),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, "tier Exists (this host: no tier label)"),
    ({"matchExpressions": [{"key": "maintenance", "operator": "DoesNotExist"}]}, None),
    ({"matchExpressions": [{"key": "site", "operator": "DoesNotExist"}]}, "site DoesNotExist (this host: lab-2)"),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["40"]}]}, None),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": [191]}]},
     "gpu.memory_gib > 191 (this host: 191)"),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Lt", "values": ["191.5"]}]}, None),
    ({"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Lt", "values": ["100"]}]},
     "gpu.memory_gib < 100 (this host: 191)"),
    ({"matchExpressions": [{"key": "hostname", "operator": "Gt", "values": ["1"]}]},
     "hostname > 1 (this host: mi300x-1)"),  # not a number: no match
])
def test_each_operator_on_a_mi300x_host(write, hosts, why):
    assert chosen(write, MI300X, a=hosts) == {"a": why}


def test_a_missing_label_fails_in_exists_and_numbers_but_passes_notin(write):
    assert chosen(write, LAPTOP,
                  gpu={"matchLabels": {"gpu.vendor": "amd"}},
                  big={"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Gt", "values": ["0"]}]},
                  small={"matchExpressions": [{"key": "gpu.memory_gib", "operator": "Lt", "values": ["1000"]}]},
                  cpu={"matchExpressions": [{"key": "gpu.vendor", "operator": "NotIn", "values": ["amd", "nvidia"]}]},
                  ) == {"cpu": None, "big": "gpu.memory_gib > 0 (this host: no gpu.memory_gib label)",
                        "gpu": "gpu.vendor In [amd] (this host: no gpu.vendor label)",
                        "small": "gpu.memory_gib < 1000 (this host: no gpu.memory_gib label)"}


def test_a_model_for_other_hosts_is_not_rendered_and_takes_no_port(write):
    write("amd.yaml", model_yaml("amd", backend="llama-server-cpu", hosts={"matchLabels": {"gpu.vendor": "amd"}}))
    write("cpu.yaml", model_yaml("cpu", backend="llama-server-cpu"))
    desired = build_desired([str(write.root)], Config(), LAPTOP, placement=False)
    assert desired.elsewhere == {"amd": "gpu.vendor In [amd] (this host: no gpu.vendor label)"}
    assert sorted(desired.rendered) == ["cpu"] and desired.problems == {}
    assert desired.rendered["cpu"].port == Config().ports.start  # the first port: none went to `amd`
    assert [d.name for d in desired.here] == ["cpu"] and desired.labels["hostname"] == "laptop"
    everything = build_desired([str(write.root)], Config(), LAPTOP, placement=False, select=False)  # an export
    assert sorted(everything.rendered) == ["amd", "cpu"] and everything.elsewhere == {}


def test_the_configs_host_labels_win_over_the_detected_ones(write):
    from xgen_declare.config import HostSection
    write("amd.yaml", model_yaml("amd", backend="llama-server-cpu", hosts={"matchLabels": {"gpu.vendor": "amd"}}))
    config = Config(host=HostSection(labels={"gpu.vendor": "amd"}))
    desired = build_desired([str(write.root)], config, LAPTOP, placement=False)
    assert desired.elsewhere == {} and list(desired.rendered) == ["amd"] and desired.labels["gpu.vendor"] == "amd"


# spec.overrides: a host's values, applied in order before the model is resolved (desired/hosts.py with_overrides)
OVERRIDES = [{"hosts": {"matchLabels": {"gpu.vendor": "amd"}}, "set": {"ctx_size": 8192, "threads": 8}},
             {"hosts": {"matchLabels": {"site": "lab-2"}}, "set": {"ctx_size": 8192, "parallel": 4}},
             {"hosts": {"matchLabels": {"site": "lab-9"}}, "set": {"ctx_size": 1024}}]


def test_overrides_that_select_the_host_set_its_values_before_rendering(write):
    write("m.yaml", model_yaml("m", backend="llama-server-cpu", ctx_size=2048, overrides=OVERRIDES))
    desired = build_desired([str(write.root)], Config(), MI300X, placement=False)
    assert desired.problems == {}
    spec = desired.resolved["m"].spec
    assert (spec.ctx_size, spec.threads, spec.parallel) == (8192, 8, 4)
    argv = desired.rendered["m"].argv
    assert argv[argv.index("--ctx-size") + 1] == "8192" and argv[argv.index("--threads") + 1] == "8"
    assert desired.overrides == {"m": ["spec.overrides[0] (gpu.vendor In [amd]): ctx_size=8192, threads=8",
                                       "spec.overrides[1] (site In [lab-2]): ctx_size=8192, parallel=4"]}
    assert desired.here[0].spec.ctx_size == 8192  # the router's table sees the host's values too
    laptop = build_desired([str(write.root)], Config(), LAPTOP, placement=False)  # no override selects it
    assert laptop.resolved["m"].spec.ctx_size == 2048 and laptop.overrides == {} and laptop.problems == {}


def test_two_overrides_that_set_one_field_differently_on_a_host_are_an_error_naming_both(write):
    clash = OVERRIDES[:1] + [{"hosts": {"matchLabels": {"site": "lab-2"}}, "set": {"ctx_size": 4096}}]
    path = write("m.yaml", model_yaml("m", backend="llama-server-cpu", overrides=clash))
    write("other.yaml", model_yaml("other", backend="llama-server-cpu"))
    desired = build_desired([str(write.root)], Config(), MI300X, placement=False)
    assert [p.format() for p in desired.problems["m"]] == [
        f"{path}:7: spec.overrides[1].set.ctx_size: conflicts with spec.overrides[0] (line 7): both select this "
        "host and set ctx_size to 4096 and 8192 (set it in one of them, or make their hosts selectors exclude each "
        "other)"]
    assert "m" not in desired.rendered and "other" in desired.rendered  # the others go on
    laptop = build_desired([str(write.root)], Config(), LAPTOP, placement=False)  # neither selects it: no conflict
    assert laptop.problems == {} and "m" in laptop.rendered
