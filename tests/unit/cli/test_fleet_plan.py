"""Previewing other hosts (issue 24 items 6, 7): `plan --inventory FILE` selects by that host's labels
(detected from its GPUs + its `labels:`), and `fleet plan DIR --inventories HOSTS_DIR` plans once per host
and prints which host runs which model. Offline: nothing of this machine is looked at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import model_yaml

REPO = Path(__file__).resolve().parents[3]


def inventory(name: str, vendor: str | None, mib: int = 81920, labels: str = "") -> str:
    gpu = (f"gpus:\n  - {{index: 0, vendor: {vendor}, name: GPU, type: {'nvidia' if vendor == 'nvidia' else 'amd_cdna'},"
           f" memory_total_mib: {mib}, memory_free_mib: {mib}}}\n") if vendor else ""
    backends = "backends:\n  - {name: llama-server-cpu, available: true, binary: /opt/x/llama-server, dialect: new}\n"
    return f"apiVersion: xgen/v1\nkind: Inventory\nhostname: {name}\narch: x86_64\n{labels}{gpu}{backends}"


@pytest.fixture
def hosts(tmp_path):
    d = tmp_path / "hosts"
    d.mkdir()
    (d / "a100.yaml").write_text(inventory("a100", "nvidia", labels="labels: {site: dc-1}\n"))
    (d / "mi300x.yaml").write_text(inventory("mi300x", "amd", 196592, labels="labels: {site: dc-1, tier: prod}\n"))
    (d / "laptop.yaml").write_text(inventory("laptop", None))
    (d / "README.md").write_text("not an inventory")  # left out
    return d


@pytest.fixture
def manifests(write):
    cpu = dict(backend="llama-server-cpu")
    write("amd.yaml", model_yaml("amd", hosts={"matchLabels": {"gpu.vendor": "amd"}}, **cpu))
    write("big.yaml", model_yaml("big", hosts={"matchExpressions": [
        {"key": "gpu.memory_gib", "operator": "Gt", "values": ["100"]}]}, **cpu))
    write("dc.yaml", model_yaml("dc", hosts={"matchLabels": {"site": "dc-1"}}, **cpu))
    write("all.yaml", model_yaml("all", **cpu))
    write("qa.yaml", model_yaml("qa", hosts={"matchLabels": {"tier": "qa"}}, **cpu))
    return write.root


def test_plan_inventory_selects_by_that_hosts_labels(cli, manifests, hosts, tmp_path):
    r = cli("--state-dir", str(tmp_path / "s"), "plan", str(manifests), "--inventory", str(hosts / "a100.yaml"))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "start    all: new model",
        "start    dc: new model",
        "keep     amd: not for this host: gpu.vendor In [amd] (this host: nvidia)",
        "keep     big: not for this host: gpu.memory_gib > 100 (this host: 80)",
        "keep     qa: not for this host: tier In [qa] (this host: no tier label)",
        "2 to start, 0 to restart, 0 to stop, 0 blocked, 0 unchanged, 3 not for this host"]
    r = cli("--state-dir", str(tmp_path / "s"), "plan", str(manifests), "--inventory", str(hosts / "mi300x.yaml"),
            "-o", "json")
    actions = {a["name"]: (a["kind"], a["cause"]) for a in r.json()["actions"]}
    assert actions == {"all": ("start", "new"), "amd": ("start", "new"), "big": ("start", "new"),
                       "dc": ("start", "new"), "qa": ("keep", "not_here")}


def test_an_inventory_with_a_bad_label_is_refused_with_its_line(cli, manifests, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(inventory("x", None, labels="labels:\n  'bad key': x\n"))
    r = cli("--state-dir", str(tmp_path / "s"), "plan", str(manifests), "--inventory", str(bad))
    assert r.code == 1
    assert r.err.strip() == (f"{bad}:5: labels: 'bad key' is not a label key (letters, digits and . _ / -, starting "
                             "and ending with a letter or digit, at most 253 characters) (e.g. labels: {site: lab-2, "
                             "tier: prod})")


def test_fleet_plan_table(cli, manifests, hosts):
    r = cli("fleet", "plan", str(manifests), "--inventories", str(hosts))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[:7] == [
        "MODEL  a100  laptop  mi300x",
        "all    runs  runs    runs",
        "amd    -     -       runs",
        "big    -     -       runs",
        "dc     runs  -       runs",
        "qa     -     -       -",
        "note: qa: not for any of the 3 hosts (no spec.hosts selector matches)"]
    assert lines[7] == "hosts:"
    assert lines[8] == (f"  a100 ({hosts}/a100.yaml): 2 to start, 0 to restart, 0 to stop, 0 blocked, 0 unchanged, "
                        "3 not for this host; labels: arch=x86_64 gpu.count=1 gpu.memory_gib=80 gpu.model=GPU "
                        "gpu.vendor=nvidia hostname=a100 site=dc-1")


def test_fleet_plan_json(cli, manifests, hosts):
    r = cli("fleet", "plan", str(manifests), "--inventories", str(hosts), "-o", "json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["models"]["dc"] == {"a100": "runs", "laptop": "-", "mi300x": "runs"}
    assert data["nowhere"] == ["qa"] and data["problems"] == []
    assert [h["host"] for h in data["hosts"]] == ["a100", "laptop", "mi300x"]
    assert data["hosts"][2]["labels"]["tier"] == "prod"
    assert {a["name"]: a["kind"] for a in data["hosts"][1]["plan"]["actions"]}["all"] == "start"


def test_fleet_plan_shows_what_does_not_fit(cli, write, tmp_path):
    d = tmp_path / "hosts"
    d.mkdir()
    (d / "one.yaml").write_text(inventory("one", "nvidia"))
    write("two.yaml", model_yaml("two", backend="llama-server-cpu", gpus=[0, 1]))
    r = cli("fleet", "plan", str(write.root), "--inventories", str(d))
    assert r.out.splitlines()[:3] == [
        "MODEL  one", "two    blocked",
        f"one: blocked  two: {write.root}/two.yaml:7: spec.gpus[1]: GPU 1 does not exist on this host (GPUs: 0) "
        "(see `xgen-declare gpus`)"]


def test_a_bad_inventory_is_reported_and_the_other_hosts_planned(cli, manifests, hosts):
    (hosts / "zz.yaml").write_text("apiVersion: xgen/v1\nkind: Inventory\ngpus: 3\n")
    r = cli("fleet", "plan", str(manifests), "--inventories", str(hosts))
    assert r.code == 1
    assert r.out.splitlines()[0] == "MODEL  a100  laptop  mi300x"
    assert f"  zz ({hosts}/zz.yaml): inventory invalid" in r.out.splitlines()
    assert r.err.startswith(f"{hosts}/zz.yaml:3: gpus: ")


def test_a_manifest_error_is_said_once_and_exits_1(cli, manifests, hosts):
    (manifests / "bad.yaml").write_text(model_yaml("bad", hosts={"matchExpressions": [{"key": "a", "operator": "Near"}]}))
    r = cli("fleet", "plan", str(manifests), "--inventories", str(hosts))
    assert r.code == 1
    assert r.err.splitlines() == [f"{manifests}/bad.yaml:6: spec.hosts.matchExpressions[0].operator: unknown "
                                  "operator 'Near' (use one of In, NotIn, Exists, DoesNotExist, Gt, Lt)"]
    assert "bad    invalid  invalid  invalid" in r.out.splitlines()


def test_no_inventory_in_the_directory(cli, manifests, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("fleet", "plan", str(manifests), "--inventories", str(tmp_path / "empty"))
    assert r.code == 1
    assert r.err.strip() == (f"{tmp_path}/empty: holds no inventory file (*.yaml, *.yml, *.json) (add one per host: "
                             f"xgen-declare inventory -o yaml > {tmp_path}/empty/HOST.yaml (on each host))")


def test_the_example_inventories_read_and_carry_labels(cli, manifests):
    r = cli("fleet", "plan", str(manifests), "--inventories", str(REPO / "examples" / "inventories"), "-o", "json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["models"]["amd"] == {"gpu-a100-01": "-", "mi300x-1": "runs", "strix-halo": "runs"}
    assert data["models"]["big"] == {"gpu-a100-01": "-", "mi300x-1": "runs", "strix-halo": "-"}
    assert {h["host"]: h["labels"]["site"] for h in data["hosts"]} == {"gpu-a100-01": "dc-1", "mi300x-1": "dc-1",
                                                                        "strix-halo": "lab-2"}


def test_validate_accepts_hosts_and_checks_only_that_hosts_models(cli, write, tmp_path):
    inv = tmp_path / "one.yaml"
    inv.write_text(inventory("one", "nvidia"))
    write("far.yaml", model_yaml("far", backend="llama-server-cpu", gpus=[5], hosts={"matchLabels": {"gpu.vendor": "amd"}}))
    assert cli("validate", str(write.root)).code == 0
    r = cli("validate", str(write.root), "--inventory", str(inv))
    assert r.code == 0, r.err  # GPU 5 is not checked on a host the model is not for


def test_render_leaves_out_another_hosts_model_with_a_note(cli, manifests, hosts, tmp_path):
    r = cli("--state-dir", str(tmp_path / "s"), "render", str(manifests), "--inventory", str(hosts / "laptop.yaml"),
            "-o", "json")
    assert r.code == 0, r.err
    assert [m["name"] for m in r.json()] == ["all"]
    assert [line for line in r.err.splitlines() if line.startswith("note:")] == [
        "note: amd: not for this host: gpu.vendor In [amd] (this host: no gpu.vendor label)",
        "note: big: not for this host: gpu.memory_gib > 100 (this host: no gpu.memory_gib label)",
        "note: dc: not for this host: site In [dc-1] (this host: no site label)",
        "note: qa: not for this host: tier In [qa] (this host: no tier label)"]


def test_this_machines_host_labels_are_not_another_hosts(cli, manifests, hosts, tmp_path):
    (manifests / "xgen-declare.yaml").write_text("host:\n  labels: {tier: qa}\n")  # this machine is a qa box
    r = cli("--state-dir", str(tmp_path / "s"), "plan", str(manifests), "--inventory", str(hosts / "a100.yaml"))
    assert "keep     qa: not for this host: tier In [qa] (this host: no tier label)" in r.out.splitlines()
    r = cli("render", str(manifests), "--inventory", str(hosts / "a100.yaml"), "-o", "json")
    assert "qa" not in [m["name"] for m in r.json()]
    assert cli("fleet", "plan", str(manifests), "--inventories", str(hosts), "-o", "json").json()["nowhere"] == ["qa"]


def test_plan_and_render_inventory_show_that_hosts_overrides(cli, write, hosts, tmp_path):
    """spec.overrides (issue 24 item 6): the values of the overrides that select the previewed host, shown by
    plan and render; a host two conflicting overrides select gets an error naming both (exit 1)."""
    write("m.yaml", "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: m}\nspec:\n  model_path: /m/x.gguf\n"
          "  backend: llama-server-cpu\n  ctx_size: 2048\n  overrides:\n"
          "    - hosts: {matchLabels: {site: dc-1}}\n      set: {ctx_size: 8192}\n"
          "    - hosts: {matchLabels: {tier: prod}}\n      set: {ctx_size: 4096}\n")
    state = ("--state-dir", str(tmp_path / "s"))
    r = cli(*state, "plan", str(write.root), "--inventory", str(hosts / "a100.yaml"))
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == "start    m: new model"
    assert "note: overrides: m: spec.overrides[0] (site In [dc-1]): ctx_size=8192" in r.out + r.err
    r = cli(*state, "render", str(write.root), "--inventory", str(hosts / "a100.yaml"), "-o", "json")
    assert r.code == 0, r.err
    (m,) = r.json()
    assert m["argv"][m["argv"].index("--ctx-size") + 1] == "8192"
    assert m["overrides"] == ["spec.overrides[0] (site In [dc-1]): ctx_size=8192"]
    r = cli(*state, "plan", str(write.root), "--inventory", str(hosts / "laptop.yaml"))  # neither selects it
    assert r.code == 0 and "overrides" not in r.out + r.err
    r = cli(*state, "plan", str(write.root), "--inventory", str(hosts / "mi300x.yaml"))  # dc-1 and prod: both
    assert r.code == 1
    assert r.out.splitlines()[0] == "keep     m: manifest invalid: nothing running"
    assert f"{write.root}/m.yaml:12: spec.overrides[1].set.ctx_size: conflicts with spec.overrides[0] (line 10): " \
           "both select this host and set ctx_size to 4096 and 8192 (set it in one of them, or make their hosts " \
           "selectors exclude each other)" in r.err
    r = cli(*state, "validate", str(write.root), "--inventory", str(hosts / "mi300x.yaml"))
    assert r.code == 1 and "spec.overrides[1].set.ctx_size: conflicts with spec.overrides[0] (line 10)" in r.err
    assert cli(*state, "validate", str(write.root), "--inventory", str(hosts / "a100.yaml")).code == 0
