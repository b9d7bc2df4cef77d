"""`xgen-declare run [DIR...]`: the foreground daemon (watch + converge + supervise)."""

from __future__ import annotations

import logging
import sys

import click

from xgen_declare.reconciler.env import open_env
from xgen_declare.reconciler.daemon import Daemon
from xgen_declare.cli.common import PATHS, get_globals, global_options


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("xgen_declare")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@click.command(short_help="Run the daemon in the foreground: watch DIR and keep models converged")
@click.argument("dirs", nargs=-1, metavar="[DIR]...", type=PATHS)
@click.option("--stop-on-exit", is_flag=True, help="Stop every model when the daemon exits (default: leave "
              "them running for the next daemon to adopt)")
@click.option("--api", "api", is_flag=True, help="Serve the management HTTP API (docs/api.md) in this process")
@click.option("--api-host", metavar="HOST", help="Address of the API [default: api.host, 127.0.0.1]; any "
              "non-loopback address needs a token (api.token_file or XGEN_API_TOKEN)")
@click.option("--api-port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Port of the API [default: api.port, 8000]")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging")
@global_options
def command(dirs: tuple[str, ...], stop_on_exit: bool, api: bool, api_host: str | None, api_port: int | None,
            verbose: bool) -> int:
    """Watch DIR (default: the dir the state dir records), the config and the templates; converge on
    every change (debounced), on a periodic full resync and on SIGHUP; restart crashed models with
    back-off; adopt models a previous daemon started. SIGINT/SIGTERM end the daemon and leave the
    models running unless --stop-on-exit. One daemon per state dir (flock).

    With --api the management HTTP API (/api/management/*, /metrics; see docs/api.md) runs in the same
    process: POST load writes DIR/api/NAME.yaml, POST unload removes it."""
    setup_logging(verbose)
    env = open_env(get_globals(), dirs)
    daemon = Daemon(env, stop_on_exit=stop_on_exit)
    server = None
    if api or api_host or api_port:
        from xgen_declare.api import ApiServer

        server = ApiServer(daemon, api_host, api_port)  # refuses a public bind without a token, before any work
    daemon.install_signals()
    logging.getLogger("xgen_declare.reconciler.daemon").info("serving %s (state dir %s, pid %s)", " ".join(env.paths),
                                                  env.store.root, __import__("os").getpid())
    if server is None:
        return daemon.run()
    daemon.start()
    try:
        server.start()
        daemon.loop()
    finally:
        try:
            daemon.stop_models()  # --stop-on-exit: drained through the router, so it still serves meanwhile
        finally:
            server.stop()
            daemon.shutdown()
    return 0
