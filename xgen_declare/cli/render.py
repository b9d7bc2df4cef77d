"""`xgen-declare render PATH...`: the exact argv + env each model would run with."""

from __future__ import annotations

import click

from xgen_declare.desired.build import build_desired
from xgen_declare.desired.hosts import for_another_host
from xgen_declare.names import escape_controls
from xgen_declare.processes.spec import shell_quote
from xgen_declare.processes.state_store import held_ports
from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options, output_option, print_json, table
from xgen_declare.cli.hostctx import host_inventory, inventory_option_help


@click.command(short_help="Show the exact command of each model")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=PATHS)
@output_option(("table", "json", "shell"), "table")
@click.option("--inventory", "inventory_file", metavar="FILE", help=inventory_option_help)
@global_options
def command(paths: tuple[str, ...], output: str, inventory_file: str | None) -> int:
    """Render each model's command: argv (never a shell string), env, port and endpoint.

    Ports come from the daemon's state when it has one, otherwise a deterministic preview
    assignment is shown (marked "preview"). `-o shell` prints a quoted, copy-pasteable preview;
    secrets show as ***; a value with control characters is written as $'..\\xHH..' (never raw). Exit code 1 when a model cannot be rendered, or this host (--inventory: that
    host) cannot give it the GPUs it asks for (the reason `plan` shows for it, Blocked). A model whose
    spec.hosts does not select this host (--inventory: that host) is left out with a note.
    """
    g = get_globals()
    config = g.load_config(list(paths))
    inventory = host_inventory(g, config, inventory_file)
    held = held_ports(g.resolve_state_dir(config))
    target = for_another_host(config) if inventory_file else config  # spec.hosts: that host's labels only
    desired = build_desired(list(paths), target, inventory, held_ports=held, preview=not held)
    # a model this host cannot run as declared has no command: its error, as `plan` shows it, instead
    models = [desired.rendered[n] for n in sorted(desired.rendered) if n not in desired.blocked]
    sources = {d.name: d.spec.source for d in desired.load.models if d.spec.source is not None}  # as written
    if output == "json":
        print_json([{**m.to_json(), **({"source": sources[m.name].to_json()} if m.name in sources else {}),
                     **({"overrides": desired.overrides[m.name]} if m.name in desired.overrides else {})}
                    for m in models])
    elif output == "shell":
        for m in models:
            note = " (preview port)" if m.port_source == "preview" else ""
            # comments carry values from manifests (a reason, a warning): control characters escaped
            click.echo(escape_controls(f"# {m.name}: {m.backend} -> {m.endpoint}{note}") + "\n"
                       + escape_controls(f"# {m.backend_reason}"))
            if m.name in sources:
                click.echo(escape_controls(f"# source: {sources[m.name].shown()}"))
            for text in desired.overrides.get(m.name, []):
                click.echo(escape_controls(f"# override: {text}"))
            for w in m.warnings:
                click.echo(escape_controls(f"# warning: {w}"))
            for w in m.workers:  # an RPC group: its local workers start first
                click.echo(escape_controls(f"# RPC worker {w.host}:{w.port}") + "\n"
                           + " ".join(shell_quote(a) for a in w.argv))
            click.echo(m.shell() + "\n")
    else:
        mark = {"preview": "*", "none": "-"}
        rows = [[m.name, m.backend, f"{m.port}{mark.get(m.port_source, '')}", m.endpoint,
                 " ".join(m.argv)] for m in models]
        click.echo(table(rows, ["NAME", "BACKEND", "PORT", "ENDPOINT", "COMMAND"]))
        if any(m.port_source == "preview" for m in models):
            click.echo("* preview port: no daemon state yet; the daemon assigns the same way")
        if any(m.port_source == "none" for m in models):
            click.echo("- no port: enabled: false takes none from the range (it gets one once enabled)")
        for m in models:
            if m.name in sources:
                click.echo(escape_controls(f"source of {m.name}: {sources[m.name].shown()}"))
            for text in desired.overrides.get(m.name, []):
                click.echo(escape_controls(f"override of {m.name} on this host: {text}"))
        for m in models:
            if m.backend_note:
                eprint(f"note: {m.name}: backend {m.backend}: {m.backend_note}")
    for name, why in sorted(desired.elsewhere.items()):  # spec.hosts: no command here, and no error
        eprint(escape_controls(f"note: {name}: not for this host: {why}"))
    shown = set()
    names = sorted(set(desired.problems) | set(desired.blocked))
    problems = [p for name in names for p in desired.problems.get(name, []) + desired.blocked.get(name, [])]
    problems += desired.load.problems
    for p in problems:  # per-model problems, then those no model owns (a missing path, a broken file)
        if p not in shown:
            shown.add(p)
            eprint(p.format())
    return 1 if any(p.severity == "error" for p in shown) else 0
