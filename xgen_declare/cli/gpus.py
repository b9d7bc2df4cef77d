"""`xgen-declare gpus`: this host's GPUs in the host-wide numbering that manifests' `gpus:` use."""

from __future__ import annotations

import click

from xgen_declare.inventory.host import detect_host
from xgen_declare.cli.common import eprint, get_globals, global_options, output_option, print_json, table


def _memory(free: int | None, total: int | None) -> str:
    return f"{'?' if free is None else free}/{'?' if total is None else total}"


@click.command(short_help="List this host's GPUs")
@output_option(("table", "json"), "table")
@global_options
def command(output: str) -> int:
    """List GPUs: NVIDIA by PCI bus id, then AMD by PCI bus id; INDEX is what manifests' `gpus:` use.

    \b
    JSON: a list of objects with index, vendor, name, type, gfx, integrated, memory_total_mib,
    memory_free_mib, uuid, pci_bus_id (and more); a host without GPUs gives [].
    Integrated GPUs share system RAM: their memory is bounded by MemAvailable.
    Warnings (unreadable sysfs files, a hung nvidia-smi) go to stderr.
    """
    g = get_globals()
    inventory = detect_host(None, sysfs_root=g.sysfs(), proc_root=g.proc(), with_backends=False)
    if output == "json":
        print_json(inventory.gpus_json())
    elif inventory.gpus:
        rows = [[x.index, x.vendor, x.type, x.gfx, x.name, _memory(x.memory_free_mib, x.memory_total_mib),
                 x.pci_bus_id, "yes" if x.integrated else "no", "hidden" if x.hidden else ""]
                for x in inventory.gpus]
        click.echo(table(rows, ["INDEX", "VENDOR", "TYPE", "GFX", "NAME", "FREE/TOTAL MiB", "PCI", "INTEGRATED",
                                "VISIBLE"]))
    else:
        click.echo("no GPUs found")
    for w in inventory.warnings:
        eprint(f"warning: {w}")
    return 0
