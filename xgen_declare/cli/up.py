"""`xgen-declare up [NAME...]`: release `down` holds and start the models again."""

from __future__ import annotations

import click

from xgen_declare.cli.common import complete_model_names, global_options
from xgen_declare.cli.imperative import run_verb


@click.command(short_help="Release down holds and start models")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_model_names)
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait at most")
@global_options
def command(names: tuple[str, ...], timeout: float) -> int:
    """Release the hold of NAME (default: every model) and converge it with its manifest."""
    return run_verb("up", names, timeout)
