"""`xgen-declare run [DIR...]`: the foreground daemon (watch + converge + supervise)."""

from __future__ import annotations

import logging
import os
import sys

import click

from xgen_declare.errors import UsageError
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.env import Env, open_env, open_source_env
from xgen_declare.reconciler.daemon import Daemon
from xgen_declare.reconciler.gitpoll import GitPoll, recorded_spec, spec_json
from xgen_declare.sources.spec import GitSpec, parse_git_argument
from xgen_declare.cli.common import PATHS, Globals, get_globals, global_options
from xgen_declare.cli.sourceview import FILE_FLAGS, command_line_files, manifest_check, source_file_options


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("xgen_declare")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@click.command(short_help="Run the daemon in the foreground: watch DIR (or follow a git source) and keep models "
               "converged")
@click.argument("dirs", nargs=-1, metavar="[DIR... | git+URL[#REF][//PATH]]", type=PATHS)
@click.option("--stop-on-exit", is_flag=True, help="Stop every model when the daemon exits (default: leave "
              "them running for the next daemon to adopt)")
@click.option("--api", "api", is_flag=True, help="Serve the management HTTP API (docs/api.md) in this process")
@click.option("--api-host", metavar="HOST", help="Address of the API [default: api.host, 127.0.0.1]; any "
              "non-loopback address needs a token (api.token_file or XGEN_API_TOKEN)")
@click.option("--api-port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Port of the API [default: api.port, 8000]")
@source_file_options("git+URL")
@click.option("--webhook-secret-file", metavar="FILE", help="With git+URL and --api: the webhooks' secret "
              "(source.webhook_secret_file)")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging")
@global_options
def command(dirs: tuple[str, ...], stop_on_exit: bool, api: bool, api_host: str | None, api_port: int | None,
            files: dict[str, str | None], webhook_secret_file: str | None, verbose: bool) -> int:
    """Watch DIR (default: the dir the state dir records), the config and the templates; converge on
    every change (debounced), on a periodic full resync and on SIGHUP; restart crashed models with
    back-off; adopt models a previous daemon started. SIGINT/SIGTERM end the daemon and leave the
    models running unless --stop-on-exit. One daemon per state dir (flock).

    With --api the management HTTP API (/api/management/*, /metrics; see docs/api.md) runs in the same
    process: POST load writes DIR/api/NAME.yaml, POST unload removes it.

    \b
    A git source instead of DIR (README "Config from git"): the config's `source:` (--config FILE), or
    git+URL[#REF][//PATH] here. The manifests are then the commit served from STATE_DIR/source/serving,
    polled every source.interval in a thread of its own (and at once on a webhook, with --api); a commit
    that is refused or a remote that cannot be reached changes nothing that runs. With git+URL, the
    flags --verify-allowed-signers, --token-file, --ssh-key-file, --known-hosts and --webhook-secret-file
    set what the config's `source:` would (checked at once: a missing file is an error naming the flag):

    \b
      xgen-declare run git+https://git.example.org/ops/llm.git#main//manifests \\
          --verify-allowed-signers keys/allowed_signers --token-file secrets/git-token"""
    setup_logging(verbose)
    g = get_globals()
    env, source = open_run_env(g, dirs, {**files, "webhook_secret_file": webhook_secret_file})
    daemon = Daemon(env, stop_on_exit=stop_on_exit)
    daemon.source = source
    server = None
    if api or api_host or api_port:
        from xgen_declare.api import ApiServer

        server = ApiServer(daemon, api_host, api_port)  # refuses a public bind without a token, before any work
    daemon.install_signals()
    what = f"git source {source.spec.url} (from {env.paths[0]})" if source else " ".join(env.paths)
    logging.getLogger("xgen_declare.reconciler.daemon").info("serving %s (state dir %s, pid %s)", what,
                                                             env.store.root, os.getpid())
    daemon.start()
    try:
        record_source(env, source)
        if source is not None:
            source.start(daemon.add_tick_hook, daemon.nudge)
        if server is not None:
            server.start()
        daemon.loop()
    finally:
        try:
            daemon.stop_models()  # --stop-on-exit: drained through the router, so it still serves meanwhile
        finally:
            if source is not None:
                source.stop()
            if server is not None:
                server.stop()
            daemon.shutdown()
    return 0


FLAGS = {**FILE_FLAGS, "webhook_secret_file": "--webhook-secret-file"}  # only `run` takes the webhooks' secret


def open_run_env(g: Globals, dirs: tuple[str, ...],
                 files: dict[str, str | None] | None = None) -> tuple[Env, GitPoll | None]:
    """DIRs (a local manifests dir), or a git source: git+URL as the argument (with `files`, the source's
    files from the command line), the explicit config's `source:`, or (no argument, no config) the source
    this state dir's daemon followed last."""
    argument = _git_argument(dirs)
    spec = command_line_files(argument, files or {}, FLAGS, (
        "a git+URL argument", "run git+URL[#REF][//PATH]", "for a DIR it means nothing, and the config's "
        "`source:` sets its own files"))
    if argument is None:
        spec = _git_spec(g, dirs)
    if spec is None:
        env = open_env(g, dirs)
        if env.config.source is not None:
            raise UsageError(f"{env.config.file} has a `source:` section and DIR was given: run without DIR to "
                             "follow the git source, or remove `source:` to serve DIR")
        return env, None
    config = g.load_config()
    source = GitPoll(spec, g.resolve_state_dir(config), manifest_check)
    return open_source_env(g, config, source.manifests_dir), source


def _git_argument(dirs: tuple[str, ...]) -> GitSpec | None:
    """The git+URL argument, None for DIRs."""
    gits = [d for d in dirs if d.startswith("git+")]
    if gits and len(dirs) > 1:
        raise UsageError(f"{gits[0]} is a git source: give it alone (no DIR beside it, one source per daemon)")
    return parse_git_argument(gits[0]) if gits else None


def _git_spec(g: Globals, dirs: tuple[str, ...]) -> GitSpec | None:
    """Without a git+URL argument: None for DIRs; else the explicit config's `source:` or the recorded one."""
    if dirs:
        return None
    config = g.load_config() if g.config_path() else None
    spec = config.git_spec() if config is not None else None
    if spec is None:  # the source the last daemon of this state dir followed (`run git+URL`, then `run`)
        spec = recorded_spec(StateStore(g.resolve_state_dir(config)).daemon_info())
    return spec


def record_source(env: Env, source: GitPoll | None) -> None:
    """daemon.json "source": the spec this daemon follows (absent for a local DIR)."""
    info = env.store.daemon_info()
    if source is None and "source" not in info:
        return
    if source is None:
        info.pop("source", None)
    else:
        info["source"] = spec_json(source.spec)
    env.store.write_daemon_info(info)
