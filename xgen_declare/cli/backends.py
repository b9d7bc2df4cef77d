"""`xgen-declare backends`: which backends can run on this host, and why the others cannot."""

from __future__ import annotations

import click

from xgen_declare.cli.common import eprint, get_globals, global_options, output_option, print_json, table
from xgen_declare.cli.hostctx import host_inventory


@click.command(short_help="Show which backends are available here")
@output_option(("table", "json"), "table")
@global_options
def command(output: str) -> int:
    """Show every backend with its availability, binary and reason.

    A backend is available when the host has its GPU kind and its binary or module is present
    (binaries from the config's `binaries:`, else the default names on PATH). JSON: a list of
    {name, available, binary, reason}. Warnings go to stderr.
    """
    g = get_globals()
    inventory = host_inventory(g, g.load_config(), None)
    if output == "json":
        print_json(inventory.backends_json())
    else:
        rows = [[b.name, "yes" if b.available else "no", b.binary, b.version, b.dialect, b.reason]
                for b in inventory.backends]
        click.echo(table(rows, ["NAME", "AVAILABLE", "BINARY", "VERSION", "DIALECT", "REASON"]))
    for w in inventory.warnings:
        eprint(f"warning: {w}")
    return 0
