"""`xgen-declare inventory`: this host as a file that `--inventory FILE` reads back."""

from __future__ import annotations

import click

from xgen_declare.readers.yamlsource import dump_exact
from xgen_declare.cli.common import eprint, get_globals, global_options, output_option, print_json
from xgen_declare.cli.hostctx import host_inventory


@click.command(short_help="Print this host's inventory (for --inventory elsewhere)")
@output_option(("yaml", "json"), "yaml")
@global_options
def command(output: str) -> int:
    """Print GPUs, CPU, backends and detection warnings in the format `render --inventory FILE` accepts,
    with this host's `labels:` (the config's host.labels) for previewing its spec.hosts selection.

    \b
    Snapshot a GPU host and preview its commands on a laptop or in CI:
      xgen-declare inventory > gpu-host.yaml
      xgen-declare render manifests/ --inventory gpu-host.yaml
    """
    g = get_globals()
    config = g.load_config()
    inventory = host_inventory(g, config, None)
    inventory.labels = dict(config.host.labels)  # the snapshot carries this host's labels (spec.hosts)
    data = inventory.model_dump(mode="json")
    if output == "json":
        print_json(data)
    else:
        text, problems = dump_exact(data, "inventory")  # a GPU name with U+0085 must read back as printed
        if text is None:
            for p in problems:
                eprint(p.format())
            return 1
        click.echo(text, nl=False)
    if inventory.warnings:
        eprint(f"{len(inventory.warnings)} detection warning(s); see `warnings:` in the output")
    return 0
