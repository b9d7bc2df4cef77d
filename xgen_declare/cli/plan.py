"""`xgen-declare plan [DIR...]`: what a converge pass would do, with reasons. Changes nothing."""

from __future__ import annotations

import click

from ..control import open_env, seen_from_records
from ..reconcile import Pass, compute
from .common import eprint, get_globals, global_options, output_option, print_json


def compute_plan(dirs: tuple[str, ...]) -> Pass:
    env = open_env(get_globals(), dirs)
    seen = seen_from_records(env.store.load_all(), env.proc_root)
    return compute(env.paths, env.config, env.inventory(), seen)


def show(result: Pass, output: str) -> None:
    """The one printer of plans: `plan` and `apply --dry-run` both use it."""
    if output == "json":
        print_json(result.plan.to_json())
    else:
        click.echo(result.plan.format())
    for p in result.problems:
        eprint(p)


@click.command(short_help="Show what apply would change, and why")
@click.argument("dirs", nargs=-1, metavar="[DIR]...")
@output_option(("table", "json"), "table")
@global_options
def command(dirs: tuple[str, ...], output: str) -> int:
    """Compare the manifests in DIR (default: the dir the state dir records) with what runs, and print
    one action per model: start, restart, stop, keep or blocked, each with its reason
    ("argv changed: --ctx-size 4096 → 8192"). Nothing is started or stopped."""
    show(compute_plan(dirs), output)
    return 0
