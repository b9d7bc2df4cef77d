"""`xgen-declare down [NAME...]`: stop models and hold them stopped until `up` or a manifest change."""

from __future__ import annotations

import click

from xgen_declare.cli.common import complete_model_names, global_options
from xgen_declare.cli.imperative import run_verb


@click.command(short_help="Stop models and hold them stopped")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_model_names)
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait at most")
@global_options
def command(names: tuple[str, ...], timeout: float) -> int:
    """Stop NAME (default: every model) and record a hold the reconciler honours: the model stays
    Stopped (status shows "held") until `xgen-declare up NAME` or until its manifest changes.
    The declarative way to keep a model stopped is `enabled: false` in its manifest."""
    return run_verb("down", names, timeout)
