"""Shared body of `restart`, `down` and `up`: ask the daemon, or act once with no daemon running."""

from __future__ import annotations

from xgen_declare.reconciler.apply import converge_once
from xgen_declare.reconciler.plan import Request
from xgen_declare.reconciler.client import ask_daemon, daemon_pid, status_rows, wait_states
from xgen_declare.reconciler.env import open_env
from xgen_declare.errors import ExitCode, ModelNotFound, StateBusyError
from xgen_declare.names import check_model_names
from xgen_declare.states import SETTLED_STATES, State
from xgen_declare.cli.common import eprint, get_globals, table

import click


def run_verb(verb: str, names: tuple[str, ...], timeout: float) -> int:
    check_model_names(names)
    g = get_globals()
    env = open_env(g, (), need_paths=verb != "down")
    known = set(env.store.load_all())
    for problem in env.store.problems:  # a corrupt record: reported, skipped (#21 finding 15)
        eprint(problem)
    unknown = [n for n in names if n not in known]
    if unknown and verb != "up":
        raise ModelNotFound(f"unknown model(s): {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
    targets = list(names) or sorted(known)
    pid = daemon_pid(env.store)
    if pid is not None:
        if not ask_daemon(env.store, pid, verb, list(names)):
            raise StateBusyError(f"the daemon (pid {pid}) did not take the request within 30s")
        done = frozenset({State.STOPPED}) if verb == "down" else SETTLED_STATES - {State.STOPPED}
        wait_states(env.store, targets, done, timeout)
    else:  # `down` with no manifests dir recorded plans too: its models are undeclared, kept, and held
        converge_once(env, only=set(targets), timeout=timeout, requests={name: Request(verb) for name in targets})
        if not env.paths:
            eprint("stopped (no manifests dir recorded)")
    rows = status_rows(env.store, env.proc_root, targets)
    click.echo(table([[r.name, r.state.value + (" (held)" if r.held else ""), r.pid, r.endpoint]
                      for r in rows], ["NAME", "STATE", "PID", "ENDPOINT"]))
    goal = State.STOPPED if verb == "down" else State.READY
    return ExitCode.OK if all(r.state == goal for r in rows) else ExitCode.NOT_CONVERGED

