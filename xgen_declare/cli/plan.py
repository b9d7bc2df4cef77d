"""`xgen-declare plan [DIR...]`: what a converge pass would do, with reasons. Changes nothing."""

from __future__ import annotations

import click

from xgen_declare.reconciler.env import open_env
from xgen_declare.reconciler.observe import seen_from_records
from xgen_declare.reconciler.apply import Pass, compute
from xgen_declare.reconciler.downloads import store_fetcher
from xgen_declare.reconciler.hubfacts import DIRECT
from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options, output_option, print_json
from xgen_declare.cli.hostctx import host_inventory, inventory_option_help
from xgen_declare.errors import ExitCode


def compute_plan(dirs: tuple[str, ...], inventory_file: str | None = None) -> Pass:
    g = get_globals()
    env = open_env(g, dirs)
    if inventory_file:  # another host: nothing of ours runs there, and its binaries are not here
        return compute(env.paths, env.config, host_inventory(g, env.config, inventory_file), {}, local=False)
    seen = seen_from_records(env.store.load_all(), env.proc_root)
    for problem in env.store.problems:  # a corrupt record: reported, skipped (#21 finding 15)
        eprint(problem)
    # placement of a hub source not fetched yet: its metadata read now (bounded in time), or kept from before
    fetches = store_fetcher(env, network=False, hub_metadata=DIRECT)
    return compute(env.paths, env.config, env.inventory(), seen, fetches=fetches)


def show(result: Pass, output: str) -> None:
    """The one printer of plans: `plan` and `apply --dry-run` both use it."""
    if output == "json":
        print_json(result.plan.to_json())
    else:
        click.echo(result.plan.format())
    for p in result.problems:
        eprint(p)
    desired = result.desired
    for name, probs in sorted((desired.problems if desired is not None else {}).items()):
        for p in probs:  # a model invalid on this host only (conflicting spec.overrides, a render error)
            if p not in desired.load.problems and p.severity == "error":
                eprint(p.format())
    ledger = result.plan.ledger
    for name, w in sorted((ledger.warnings if ledger is not None else {}).items()):
        eprint(f"warning: {name}: {w}")
    rendered = result.desired.rendered if result.desired is not None else {}
    for name, r in sorted(rendered.items()):
        if r.backend_note:
            eprint(f"note: {name}: backend {r.backend}: {r.backend_note}")
        for w in r.plan_warnings:
            eprint(f"warning: {name}: {w}")


@click.command(short_help="Show what apply would change, and why")
@click.argument("dirs", nargs=-1, metavar="[DIR]...", type=PATHS)
@output_option(("table", "json"), "table")
@click.option("--inventory", "inventory_file", metavar="FILE", help=inventory_option_help)
@global_options
def command(dirs: tuple[str, ...], output: str, inventory_file: str | None) -> int:
    """Compare the manifests in DIR (default: the dir the state dir records) with what runs, and print
    one action per model: start, restart, stop, keep or blocked, each with its reason
    ("argv changed: --ctx-size 4096 → 8192"). Nothing is started or stopped. A model whose spec.hosts
    does not select this host (--inventory: that host) shows as `keep NAME: not for this host: ...`, naming
    the label requirement that failed.

    Below the actions, the memory ledger: per GPU (and host memory), what each model uses — predicted
    from the GGUF header, measured from llama.cpp's log once running, or reserved by vLLM's
    gpu_memory_utilization — against the usable memory. A model that does not fit is blocked, with the
    models it collides with and what would fit.

    Exit code 1 when a manifest or the config has errors (printed as FILE:LINE: field: message; the
    plan keeps such a model's last good process), when a model file is there but is no usable GGUF, or
    when the port range has no port left for some models (they are named; the plan Blocks them and
    starts the others)."""
    result = compute_plan(dirs, inventory_file)
    show(result, output)
    return exit_code(result)


def exit_code(result: Pass) -> int:
    """Invalid input (README "Exit codes"), 1: a manifest or the config has errors (a broken file, a
    hostile entry skipped by the walk, a model that cannot be rendered), a model file is there but no
    usable GGUF (crafted, truncated, a FIFO), or the port range has no port left for some models. The
    plan is printed all the same; warnings alone (a model file not there yet, an architecture placement
    does not model) are 0."""
    desired = result.desired
    if desired is None:
        return ExitCode.OK
    broken = any(p.severity == "error" for p in desired.load.problems) or any(
        p.severity == "error" for probs in desired.problems.values() for p in probs)
    bad_files = result.plan.ledger.bad_files if result.plan.ledger is not None else []
    return ExitCode.INVALID_INPUT if broken or desired.unported or bad_files else ExitCode.OK
