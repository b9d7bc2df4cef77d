"""`xgen-declare run [DIR...]`: the foreground daemon (watch + converge + supervise)."""

from __future__ import annotations

import logging
import sys

import click

from ..control import open_env
from ..daemon import Daemon
from .common import get_globals, global_options


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("xgen_declare")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@click.command(short_help="Run the daemon in the foreground: watch DIR and keep models converged")
@click.argument("dirs", nargs=-1, metavar="[DIR]...")
@click.option("--stop-on-exit", is_flag=True, help="Stop every model when the daemon exits (default: leave "
              "them running for the next daemon to adopt)")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging")
@global_options
def command(dirs: tuple[str, ...], stop_on_exit: bool, verbose: bool) -> int:
    """Watch DIR (default: the dir the state dir records), the config and the templates; converge on
    every change (debounced), on a periodic full resync and on SIGHUP; restart crashed models with
    back-off; adopt models a previous daemon started. SIGINT/SIGTERM end the daemon and leave the
    models running unless --stop-on-exit. One daemon per state dir (flock)."""
    setup_logging(verbose)
    env = open_env(get_globals(), dirs)
    daemon = Daemon(env, stop_on_exit=stop_on_exit)
    daemon.install_signals()
    logging.getLogger("xgen_declare.daemon").info("serving %s (state dir %s, pid %s)", " ".join(env.paths),
                                                  env.store.root, __import__("os").getpid())
    return daemon.run()
