"""`xgen-declare fleet plan DIR --inventories HOSTS_DIR`: which host runs which model, offline, for CI;
`xgen-declare fleet status --hosts hosts.yaml`: what every host runs now, from which commit."""

from __future__ import annotations

import os

import click

from xgen_declare.errors import ExitCode
from xgen_declare.names import escape_controls
from xgen_declare.reconciler.fleet import fleet_plan
from xgen_declare.reconciler.fleet_status import FleetStatus, ask_hosts, load_hosts, serves_commit
from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options, output_option, print_json, table
from xgen_declare.cli.plan import exit_code


@click.group(short_help="Views over many hosts (one plan per host inventory)")
def command() -> None:
    """Many hosts, one manifests repository (README "Many hosts")."""


@command.command("plan", short_help="Which host runs which model, from host inventories, offline")
@click.argument("dirs", nargs=-1, required=True, metavar="DIR...", type=PATHS)
@click.option("--inventories", "inventories", required=True, metavar="HOSTS_DIR",
              help="A directory of host inventories, one file per host (`xgen-declare inventory -o yaml` on each "
                   "host, with its `labels:`)")
@output_option(("table", "json"), "table")
@global_options
def plan(dirs: tuple[str, ...], inventories: str, output: str) -> int:
    """Plan the manifests in DIR once per host inventory in HOSTS_DIR, as `plan DIR --inventory FILE` does
    (spec.hosts selection against that host's labels, backends, GPUs, the memory ledger), and print one
    table: a row per model, a column per host, each cell what that host does with the model: runs, -
    (not for this host), blocked (with the reason below: GPUs, memory, ports), invalid, disabled,
    on-demand or held. Nothing of this machine is looked at, so it runs in a config repo's CI.

    Exit code 1 when a manifest, the config or an inventory file has errors, or when a host's plan would
    exit 1 (README "Exit codes"); a model that no host runs is a note, not an error."""
    g = get_globals()
    paths = [os.path.abspath(d) for d in dirs]
    config = g.load_config(paths)
    fleet = fleet_plan(paths, config, inventories)
    if output == "json":
        print_json(fleet.to_json())
    else:
        click.echo(fleet.format())
    for text in fleet.problems():
        eprint(text)
    bad = any(h.problems for h in fleet.hosts) or any(exit_code(h.result) for h in fleet.planned())  # type: ignore
    return ExitCode.INVALID_INPUT if bad else ExitCode.OK


@command.command("status", short_help="Every model on every host, with the commit it runs (asks each host's API)")
@click.option("--hosts", "hosts_file", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="hosts.yaml: {timeout: 5s, hosts: [{name, url, token_file}, ...]}")
@click.option("--commit", metavar="COMMIT", help="Exit 3 unless every host serves this commit (4+ hex digits) "
              "and every model there runs the spec it declares")
@output_option(("table", "json"), "table")
@global_options
def status(hosts_file: str, commit: str | None, output: str) -> int:
    """Ask every host in FILE at once (GET /api/management/models, /source and /plan, each host within the
    file's timeout, default 5s) and print one table: a row per model per host with the source commit the
    host serves, the model's state, the commit its running spec was started from, and a change the host
    still has to make. A host that does not answer is one row with the reason. Tokens are read from each
    host's token_file (relative to FILE) and never printed.

    `--commit abc`: exit 3 (README "Exit codes") unless every host serves commit abc from its git source,
    has nothing left to change and every model there is Ready (or Stopped/Idle on purpose), naming each
    host or model that does not. Exit 1 when FILE has errors."""
    if commit is not None and not (4 <= len(commit) <= 40 and all(c in "0123456789abcdef" for c in commit)):
        raise click.BadParameter(f"{commit!r} is not a commit: give 4 to 40 lowercase hex digits, e.g. "
                                 "--commit 3f6351b", param_hint="--commit")
    hosts, timeout = load_hosts(hosts_file)
    fleet = ask_hosts(hosts, timeout)
    if output == "json":
        print_json({**fleet.to_json(), **({"commit": commit, "missing": serves_commit(fleet, commit)}
                                          if commit else {})})
    else:
        click.echo(format_status(fleet))
    if commit is None:
        return ExitCode.OK
    missing = serves_commit(fleet, commit)
    if output != "json":
        for line in missing:
            eprint(f"not serving {commit}: {line}")
        if not missing:
            click.echo(f"commit {commit} serves on all {len(fleet.hosts)} host(s)")
    return ExitCode.NOT_CONVERGED if missing else ExitCode.OK


def format_status(fleet: FleetStatus) -> str:
    """HOST SERVES MODEL STATE FROM NOTE; a host's refusal of a fetched commit below the table."""
    rows = []
    for h in fleet.hosts:
        serves = (h.serving or "none")[:12] if h.source is not None else "local dir"
        if h.error is not None:
            rows.append([h.name, "-", "-", "unreachable", "-", h.error])
            continue
        for m in h.models or [{}]:
            prov = m.get("provenance") if isinstance(m.get("provenance"), dict) else {}
            rows.append([h.name, serves, m.get("name", "-"), m.get("state", "-"), (prov.get("commit") or "-")[:12],
                         h.pending.get(str(m.get("name")), "") and f"pending: {h.pending[str(m.get('name'))]}"])
    lines = [table(rows, ["HOST", "SERVES", "MODEL", "STATE", "FROM", "NOTE"])]
    lines += [escape_controls(f"{h.name}: {h.refusal}") for h in fleet.hosts if h.error is None and h.refusal]
    return "\n".join(lines)


__all__ = ["command"]
