"""`xgen-declare fleet plan DIR --inventories HOSTS_DIR`: which host runs which model, offline, for CI."""

from __future__ import annotations

import os

import click

from xgen_declare.errors import ExitCode
from xgen_declare.reconciler.fleet import fleet_plan
from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options, output_option, print_json
from xgen_declare.cli.plan import exit_code


@click.group(short_help="Views over many hosts (one plan per host inventory)")
def command() -> None:
    """Many hosts, one manifests repository (README "Many hosts")."""


@command.command("plan", short_help="Which host runs which model, from host inventories, offline")
@click.argument("dirs", nargs=-1, required=True, metavar="DIR...", type=PATHS)
@click.option("--inventories", "inventories", required=True, metavar="HOSTS_DIR",
              help="A directory of host inventories, one file per host (`xgen-declare inventory -o yaml` on each "
                   "host, with its `labels:`)")
@output_option(("table", "json"), "table")
@global_options
def plan(dirs: tuple[str, ...], inventories: str, output: str) -> int:
    """Plan the manifests in DIR once per host inventory in HOSTS_DIR, as `plan DIR --inventory FILE` does
    (spec.hosts selection against that host's labels, backends, GPUs, the memory ledger), and print one
    table: a row per model, a column per host, each cell what that host does with the model: runs, -
    (not for this host), blocked (with the reason below: GPUs, memory, ports), invalid, disabled,
    on-demand or held. Nothing of this machine is looked at, so it runs in a config repo's CI.

    Exit code 1 when a manifest, the config or an inventory file has errors, or when a host's plan would
    exit 1 (README "Exit codes"); a model that no host runs is a note, not an error."""
    g = get_globals()
    paths = [os.path.abspath(d) for d in dirs]
    config = g.load_config(paths)
    fleet = fleet_plan(paths, config, inventories)
    if output == "json":
        print_json(fleet.to_json())
    else:
        click.echo(fleet.format())
    for text in fleet.problems():
        eprint(text)
    bad = any(h.problems for h in fleet.hosts) or any(exit_code(h.result) for h in fleet.planned())  # type: ignore
    return ExitCode.INVALID_INPUT if bad else ExitCode.OK


__all__ = ["command"]
