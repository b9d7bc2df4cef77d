"""Where a verb gets the host from: an inventory file (another host) or live detection (this host)."""

from __future__ import annotations

from xgen_declare.config import Config
from xgen_declare.inventory import detect
from xgen_declare.inventory.file import load_inventory_file
from xgen_declare.inventory.model import Inventory
from xgen_declare.cli.common import Globals

inventory_option_help = ("Inventory of another host (from `xgen-declare inventory -o yaml`): preview for it "
                         "instead of this host")


def host_inventory(g: Globals, config: Config, inventory_file: str | None) -> Inventory:
    if inventory_file:
        return load_inventory_file(inventory_file)
    return detect(config, sysfs_root=g.sysfs(), proc_root=g.proc())
