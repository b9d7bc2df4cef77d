"""`xgen-declare status [NAME...]`: every model's state from the state dir (daemon or not)."""

from __future__ import annotations

import click

from xgen_declare.reconciler.client import daemon_pid, fmt_uptime, format_write_failure, status_rows, write_failures
from xgen_declare.names import check_model_names
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.gitpoll import recorded_spec
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.report import report
from xgen_declare.cli.sourceview import source_lines
from xgen_declare.cli.common import (complete_model_names, eprint, get_globals, global_options, output_option, print_json, table)


@click.command(short_help="Show the state of every model")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_model_names)
@output_option(("table", "json"), "table")
@global_options
def command(names: tuple[str, ...], output: str) -> int:
    """Name, state, backend, pid, port, endpoint, restarts, uptime and errors of each model.

    \b
    States: Pending, Downloading (its source is fetched into the store: the error column shows the
    progress), Starting, Ready, Unhealthy, CrashLoopBackOff, Stopping, Stopped, Blocked,
    Invalid, Failed, Idle (an `activation: on-demand` model that is not running: the router of
    `run --api` starts it on the first request). A model held by `down` is Stopped with held: true. `-o json` is a list of
    objects with name, state, backend, pid, port, endpoint, restarts, uptime, last_error,
    manifest_error, held, file, state_write_failed (why the daemon cannot write the model's record,
    else null; the line `daemon: state_write_failed: ...` on stderr says it too), spec_hash and
    provenance (file, sha256, git commit and dirty of the manifest the process was started from),
    last_good_spec_hash and rollout_error (a new spec failed and the last good one runs again), and
    download {done, total, rate} (bytes, bytes/s) only while the model's source is fetched.

    With a git source (`run` following one), lines on stderr say which: its URL, ref and path, the commit
    served and since when, a pin, and the last poll with its outcome and error (`source status -o json`
    and GET /api/management/source give the same as JSON)."""
    check_model_names(names)
    g = get_globals()
    store = StateStore(g.resolve_state_dir(g.load_config() if g.config_path() else None))
    rows = status_rows(store, g.proc(), list(names) or None)
    for f in write_failures(store):
        eprint(f"daemon: state_write_failed: {format_write_failure(f)}; the daemon supervises from memory "
               "and writes the records again once the state dir is writable")
    if output == "json":
        print_json([r.to_json() for r in rows])
        return 0
    body = []
    for r in rows:
        state = r.state.value + (" (held)" if r.held else "")
        err = r.error
        body.append([r.name, state, r.backend, r.pid, r.port, r.endpoint, r.restarts,
                     fmt_uptime(r.uptime), err.splitlines()[0] if err else None])
    click.echo(table(body, ["NAME", "STATE", "BACKEND", "PID", "PORT", "ENDPOINT", "RESTARTS", "UPTIME",
                            "ERROR"]))
    pid = daemon_pid(store)
    eprint(f"daemon: pid {pid}" if pid else "daemon: not running (states as last recorded, pids checked)")
    info = store.daemon_info()
    spec = recorded_spec(info)
    if spec is not None:  # the git source this state dir's daemon follows (README "Config from git")
        for line in source_lines(report(GitSource(spec, store.root))):
            eprint(line)
    config_error = info.get("config_error") if pid else None
    if config_error:
        eprint(f"daemon: config invalid, running on its last good config until it is fixed:\n{config_error}")
    for p in store.problems:
        eprint(p)
    return 0
