"""A fleet at a glance, offline (`xgen-declare fleet plan DIR --inventories HOSTS_DIR`): the manifests planned
once per host inventory, as `plan --inventory FILE` plans them (selection by spec.hosts, backends, GPUs, the
memory ledger; nothing of this machine is looked at), and one table of which host runs which model.

Each inventory file is one host: its labels are those detected from its GPUs/CPU plus its `labels:`
(inventory/labels.py); the config's `host.labels` belong to the machine that reads the config and are not
applied to another host. A cell is what that host's plan does with the model (`cell()`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from xgen_declare.config import Config
from xgen_declare.errors import InventoryFileError, Problem
from xgen_declare.inventory.file import load_inventory_file
from xgen_declare.inventory.model import Inventory
from xgen_declare.reconciler.apply import Pass, compute
from xgen_declare.reconciler.plan import BLOCKED, KEEP, Action, Cause

__all__ = ["Fleet", "HostPlan", "cell", "fleet_plan", "inventory_files"]

INVENTORY_SUFFIXES = (".yaml", ".yml", ".json")
NOT_HERE = "-"


@dataclass
class HostPlan:
    host: str                      # the inventory's hostname (else the file's name)
    file: str
    result: Pass | None = None     # None: the inventory file is invalid (`problems`)
    problems: list[Problem] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.result.desired.labels) if self.result and self.result.desired else {}


def cell(action: Action | None) -> str:
    """What one host's plan does with one model, in a word: runs, -, blocked, invalid, disabled, on-demand,
    held."""
    if action is None:
        return "?"
    if action.cause == Cause.NOT_HERE:
        return NOT_HERE
    if action.kind == BLOCKED:
        return "blocked"
    if action.cause == Cause.INVALID:
        return "invalid"
    if action.cause == Cause.DISABLED:
        return "disabled"
    if action.idle:
        return "on-demand"
    if action.kind == KEEP and action.cause in (Cause.HELD, Cause.REQUESTED):
        return "held"
    return "runs"


@dataclass
class Fleet:
    hosts: list[HostPlan] = field(default_factory=list)

    def planned(self) -> list[HostPlan]:
        return [h for h in self.hosts if h.result is not None]

    def models(self) -> list[str]:
        return sorted({a.name for h in self.planned() for a in h.result.plan.actions})  # type: ignore[union-attr]

    def cells(self) -> dict[str, dict[str, str]]:
        """model -> host -> cell."""
        return {name: {h.host: cell(h.result.plan.get(name)) for h in self.planned()}  # type: ignore[union-attr]
                for name in self.models()}

    def nowhere(self) -> list[str]:
        """Valid models that no host of the fleet runs (a selector that matches none of them)."""
        return [name for name, row in self.cells().items() if row and all(c == NOT_HERE for c in row.values())]

    def reasons(self) -> list[str]:
        """'HOST: blocked NAME: reason' for each model a host cannot run (blocked: GPUs, memory, ports)."""
        return [f"{h.host}: {a.format()}" for h in self.planned() for a in h.result.plan.actions  # type: ignore
                if a.kind == BLOCKED]

    def problems(self) -> list[str]:
        """The manifests' and inventories' problems, each once (a manifest error shows on every host)."""
        out: list[str] = []
        for h in self.hosts:
            for text in [p.format() for p in h.problems] + (list(h.result.problems) if h.result else []):
                if text not in out:
                    out.append(text)
        return out

    def format(self) -> str:
        hosts = [h.host for h in self.planned()]
        rows = [["MODEL", *hosts]] + [[name, *(row[h] for h in hosts)] for name, row in self.cells().items()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        lines += self.reasons()
        lines += [f"note: {name}: not for any of the {len(hosts)} hosts (no spec.hosts selector matches)"
                  for name in self.nowhere()]
        lines.append("hosts:")
        for h in self.hosts:
            labels = " ".join(f"{k}={v}" for k, v in sorted(h.labels.items()))
            what = h.result.plan.summary() if h.result is not None else "inventory invalid"
            lines.append(f"  {h.host} ({h.file}): {what}" + (f"; labels: {labels}" if labels else ""))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"models": self.cells(), "nowhere": self.nowhere(), "problems": self.problems(),
                "hosts": [{"host": h.host, "file": h.file, "labels": h.labels,
                           "plan": h.result.plan.to_json() if h.result is not None else None,
                           "problems": [p.to_json() for p in h.problems]} for h in self.hosts]}


def inventory_files(directory: str) -> list[str]:
    """The inventory files in `directory` (not below it), sorted; hidden files and others are left out."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise InventoryFileError([Problem(directory, None, "", f"cannot read the inventories directory: "
                                          f"{exc.strerror or exc}", "give a directory of host inventory files")])
    files = [os.path.join(directory, n) for n in names if n.endswith(INVENTORY_SUFFIXES) and not n.startswith(".")]
    if not files:
        raise InventoryFileError([Problem(directory, None, "", "holds no inventory file (*.yaml, *.yml, *.json)",
                                          "add one per host: xgen-declare inventory -o yaml > "
                                          f"{os.path.join(directory, 'HOST.yaml')} (on each host)")])
    return files


def fleet_plan(paths: list[str], config: Config, inventory_dir: str,
               load: Callable[[str], Inventory] = load_inventory_file) -> Fleet:
    """One plan per inventory file of `inventory_dir`, as for another host (no state: nothing runs there yet
    as far as this machine knows). An invalid inventory file is reported and the other hosts go on."""
    fleet = Fleet()
    taken: set[str] = set()
    for path in inventory_files(inventory_dir):
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            inventory = load(path)
        except InventoryFileError as exc:
            fleet.hosts.append(HostPlan(_unique(stem, path, taken), path, problems=list(exc.problems)))
            continue
        host = _unique(inventory.hostname or stem, path, taken)
        fleet.hosts.append(HostPlan(host, path, compute(paths, config, inventory, {}, local=False)))
    return fleet


def _unique(name: str, path: str, taken: set[str]) -> str:
    if name in taken:
        name = f"{name} ({os.path.basename(path)})"
    taken.add(name)
    return name
