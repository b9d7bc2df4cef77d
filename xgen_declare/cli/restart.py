"""`xgen-declare restart NAME...`: stop and start models now (also clears a `down` hold)."""

from __future__ import annotations

import click

from xgen_declare.cli.common import complete_model_names, global_options
from xgen_declare.cli.imperative import run_verb


@click.command(short_help="Restart models now")
@click.argument("names", nargs=-1, required=True, metavar="NAME...", shell_complete=complete_model_names)
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait at most")
@global_options
def command(names: tuple[str, ...], timeout: float) -> int:
    """Stop each NAME (SIGTERM, stop_grace, SIGKILL) and start it again with its current manifest.
    Counts as a restart. Works through a running daemon, or on its own when none runs."""
    return run_verb("restart", names, timeout)
