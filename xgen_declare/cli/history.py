"""`xgen-declare history NAME`: the model's last rollouts (from -> to spec hash, commit, result, time)."""

from __future__ import annotations

import click

from xgen_declare.errors import ExitCode, ModelNotFound
from xgen_declare.processes.history import table_rows
from xgen_declare.names import check_model_names
from xgen_declare.processes.state_store import StateStore
from xgen_declare.cli.common import eprint, get_globals, global_options, output_option, print_json, table


@click.command(short_help="Show a model's last rollouts")
@click.argument("name")
@output_option(("table", "json"), "table")
@global_options
def command(name: str, output: str) -> int:
    """The last rollouts of NAME, newest first: when, from -> to spec hash, the git commit of the
    manifest (with "(dirty)" when the file differed from it), the result (succeeded, failed,
    interrupted, or in progress) and why. Kept in STATE_DIR/history/NAME.json (the last
    20). `-o json`: the entries oldest first, as stored. A corrupt record or history file is reported on
    stderr and skipped (exit 1 when nothing else is known of NAME)."""
    check_model_names([name])
    g = get_globals()
    store = StateStore(g.resolve_state_dir(g.load_config() if g.config_path() else None))
    entries = store.load_history(name)
    known = bool(entries) or store.load(name) is not None
    for problem in store.problems:  # a corrupt record or history: reported, skipped
        eprint(problem)
    if not known and store.problems:
        return ExitCode.INVALID_INPUT
    if not known:
        raise ModelNotFound(f"no model {name!r} in the state dir {store.root} (known: "
                            f"{', '.join(sorted(store.load_all())) or 'none'})")
    if output == "json":
        print_json(entries)
        return 0
    if not entries:
        click.echo(f"{name}: no rollout recorded yet")
        return 0
    click.echo(table(table_rows(entries), ["TIME", "FROM", "TO", "COMMIT", "RESULT", "DETAIL"]))
    return 0
