"""`xgen-declare validate PATH...`: report every problem of every manifest; exit 1 if any is invalid."""

from __future__ import annotations

import click

from xgen_declare.desired.checks import host_problems, placement_problems
from xgen_declare.desired.hosts import select_for_host, with_overrides
from xgen_declare.inventory.labels import host_labels
from xgen_declare.desired.resolve import resolve
from xgen_declare.placement.choose import DEFAULT_MARGIN_MIB
from xgen_declare.errors import ProblemsError
from xgen_declare.manifests.load import load_paths
from xgen_declare.desired.rpc import rpc_problems
from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options, output_option, print_json
from xgen_declare.cli.hostctx import host_inventory, inventory_option_help


@click.command(short_help="Check manifests (all problems of all files)")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=PATHS)
@output_option(("text", "json"), "text")
@click.option("--inventory", "inventory_file", metavar="FILE", help=inventory_option_help +
              "; also checks backends, GPU indices and memory (the placement ledger, vLLM pre-checks) against it")
@global_options
def command(paths: tuple[str, ...], output: str, inventory_file: str | None) -> int:
    """Validate manifest files or directories (read recursively).

    Never looks at this machine's GPUs or binaries unless --inventory is given, so it runs in any
    config repo's CI. Problems are printed as FILE:LINE: FIELD: message (hint). Exit code 1 when
    anything is invalid.
    """
    g = get_globals()
    problems = []
    try:
        config = g.load_config(list(paths))
    except ProblemsError as exc:
        problems.extend(exc.problems)
        config = None
    result = load_paths(list(paths))
    problems.extend(result.problems)
    for decl in result.models:
        problems.extend(rpc_problems(decl, config))  # warnings: an open RPC worker, a host no daemon claims
    if inventory_file:
        inventory = host_inventory(g, config, inventory_file)
        fine = []
        here, _ = select_for_host(result.models, host_labels(inventory))  # spec.hosts: the others are not its
        for decl in here:
            overridden = with_overrides(decl, host_labels(inventory))  # that host's spec.overrides
            if overridden.problems:
                problems.extend(overridden.problems)
                continue
            res = resolve(overridden.decl, inventory)
            found = host_problems(res, inventory)
            problems.extend(found)
            if not found:
                fine.append(res)
        margin = config.placement.margin_mib if config is not None else DEFAULT_MARGIN_MIB
        cap = config.placement.host_memory_mib if config is not None else None
        problems.extend(placement_problems(fine, inventory, margin, cap))
    errors = [p for p in problems if p.severity == "error"]
    if output == "json":
        print_json([p.to_json() for p in problems])
    else:
        for p in problems:
            eprint(p.format())
        n_files = len(result.files)
        if errors:
            eprint(f"{len(errors)} problem(s) in {n_files} file(s); {len(result.models)} valid model(s)")
        else:
            click.echo(f"ok: {len(result.models)} model(s) in {n_files} file(s)")
    return 1 if errors else 0
