"""`xgen-declare apply [DIR...]`: converge once (no daemon) and exit when models are Ready or failed."""

from __future__ import annotations

import click

from xgen_declare.reconciler.apply import converge_once
from xgen_declare.reconciler.client import daemon_pid, status_rows
from xgen_declare.reconciler.env import open_env
from xgen_declare.errors import ExitCode
from xgen_declare.states import State
from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options, output_option, print_json, table
from xgen_declare.cli.plan import compute_plan, exit_code, show


@click.command(short_help="Converge once: start, restart and stop models")
@click.argument("dirs", nargs=-1, metavar="[DIR]...", type=PATHS)
@click.option("--dry-run", is_flag=True, help="Print the plan (exactly what `plan` prints) and change nothing")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until started models are Ready or failed (stops are always waited for)")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait at most")
@output_option(("table", "json"), "table")
@global_options
def command(dirs: tuple[str, ...], dry_run: bool, wait: bool, timeout: float, output: str) -> int:
    """Execute the plan once. Processes keep running after apply exits (`run` adopts them later).

    Exit code 0 when every enabled model is Ready (or Starting with --no-wait); 1 when a manifest has
    an error (printed; a model Invalid); 3 when a model is Failed, Blocked or not ready in time. With a
    daemon running, apply asks it to reconcile now."""
    if dry_run:
        preview = compute_plan(dirs)
        show(preview, output)
        return exit_code(preview)
    g = get_globals()
    env = open_env(g, dirs)
    pid = daemon_pid(env.store)
    if pid is not None:
        import os
        import signal

        os.kill(pid, signal.SIGHUP)
        eprint(f"a daemon (pid {pid}) serves {env.store.root}: asked it to reconcile now; "
               "see `xgen-declare status`")
        return 0
    result, _sup = converge_once(env, wait_ready=wait, timeout=timeout)
    rows = status_rows(env.store, env.proc_root)
    if output == "json":
        print_json({"plan": result.plan.to_json(), "status": [r.to_json() for r in rows]})
    else:
        click.echo(result.plan.format())
        click.echo()
        click.echo(table([[r.name, r.state.value, r.pid, r.endpoint, r.last_error] for r in rows],
                         ["NAME", "STATE", "PID", "ENDPOINT", "LAST ERROR"]))
    for p in result.problems:
        eprint(p)
    ok = {State.READY, State.STOPPED} | ({State.STARTING} if not wait else set())
    if result.problems or any(r.state == State.INVALID for r in rows):
        return ExitCode.INVALID_INPUT
    surged = {a.name for a in result.plan.actions if a.surge}
    failed = [r for r in rows if r.name in surged and r.rollout_error]  # the old one kept serving
    for r in failed:
        eprint(f"{r.name}: {(r.rollout_error or '').splitlines()[0]}")
    return ExitCode.OK if all(r.state in ok for r in rows) and not failed else ExitCode.NOT_CONVERGED
