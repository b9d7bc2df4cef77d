"""`xgen-declare export kubernetes DIR`: Deployments + Services for a cluster, from the same manifests."""

from __future__ import annotations

from pathlib import Path

import click

from xgen_declare.export import export_kubernetes, render_stream, write_dir
from xgen_declare.inventory.file import load_inventory_file
from xgen_declare.reconciler.fetching import read_pin
from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options


@click.group(short_help="Export the manifests to another system (kubernetes)")
@global_options
def command() -> None:
    """Export the manifests to another system; the same renderer makes the commands."""


@command.command("kubernetes", short_help="One Deployment + Service per model, kustomize-friendly")
@click.argument("paths", nargs=-1, required=True, metavar="DIR...", type=PATHS)
@click.option("-o", "--output", "output", default="-", show_default=True, metavar="OUTDIR|-",
              help="Directory for one file per model plus kustomization.yaml, or - for one stream on stdout")
@click.option("--inventory", "inventory_file", metavar="FILE",
              help="Inventory of the GPU nodes (from `xgen-declare inventory -o yaml`): their backends and "
                   "GPU count bound what is exported, and spec.hosts / spec.overrides are applied for its labels. "
                   "Default: every backend with an image, GPUs unknown, a model with spec.overrides refused")
@click.option("--partial", is_flag=True, help="Write the models that can be expressed even when others cannot "
              "(kustomization.yaml then says INCOMPLETE); the exit code stays 1")
@global_options
def kubernetes(paths: tuple[str, ...], output: str, inventory_file: str | None, partial: bool) -> int:
    """Write one Deployment + Service per model (see docs/kubernetes.md).

    Images, namespace and the model volume come from the `kubernetes:` section of xgen-declare.yaml;
    container args come from the same renderer as local processes, bound to 0.0.0.0. A model that
    cannot be expressed is reported on stderr and nothing is written (unless --partial); exit code 1.
    """
    g = get_globals()
    config = g.load_config(list(paths))
    nodes = load_inventory_file(inventory_file) if inventory_file else None
    pins = Path(g.resolve_state_dir(config)) / "pins"  # the commits this host's store pinned (read only)
    result = export_kubernetes(list(paths), config, nodes, pins=lambda source: read_pin(pins, source))
    for p in result.file_problems:
        eprint(p.format())
    for name in sorted(result.problems):
        for p in result.problems[name]:
            eprint(f"{name}: not exported: {p.format()}")
    for name in sorted(result.elsewhere):
        eprint(f"{name}: not for the --inventory's nodes: {result.elsewhere[name]} (spec.hosts; left out)")
    for name in sorted(result.applied):
        for text in result.applied[name]:
            eprint(f"{name}: for the --inventory's nodes: {text}")
    for name in sorted(result.models):
        for w in result.models[name].warnings:
            eprint(f"{name}: {w.format()}")
    if not result.complete and not partial:
        parts = [f"{len(result.problems)} model(s) cannot be exported"] if result.problems else []
        if result.file_problems:
            parts.append(f"{len(result.file_problems)} problem(s) outside any model")
        eprint(f"nothing written: {' and '.join(parts)}; fix them or pass --partial")
        return 1
    if output == "-":
        click.echo(render_stream(result), nl=False)
    else:
        files = write_dir(result, output)
        eprint(f"wrote {len(files)} file(s) to {output}: {', '.join(files)}")
    return 0 if result.complete else 1
