"""`xgen-declare pin COMMIT | unpin | status`: hold the git source at a commit, let go, and show it."""

from __future__ import annotations

import time

import click

from xgen_declare.errors import StateBusyError, StateError
from xgen_declare.sources import state
from xgen_declare.sources.poller import PollResult, outcome_of
from xgen_declare.sources.report import report
from xgen_declare.cli.common import get_globals, global_options, output_option, print_json
from xgen_declare.cli.sourceview import (exit_code, manifest_changes, open_source, print_report, print_result,
                                         short, source_option, tree_of)



@click.group(short_help="Pin, unpin and show the git source")
def command() -> None:
    """The git source of this host's manifests (the config's `source:`, or --source git+URL with
    --verify-allowed-signers, --token-file, --ssh-key-file and --known-hosts FILE; see README "Config from
    git")."""


@command.command(short_help="Hold the source at COMMIT (a rollback the next sync does not undo)")
@click.argument("commit")
@source_option
@output_option(("text", "json"), "text")
@global_options
def pin(commit: str, source: str | None, files: dict[str, str | None], output: str) -> int:
    """Make COMMIT current and keep it so: syncs fetch the ref but do not apply it until `source unpin`.
    COMMIT is a commit already fetched (a full id or an unambiguous prefix) or a full id on the remote,
    fetched now; it is verified (source.verify) and its manifests validated like any commit, and is
    refused (exit 8, nothing pinned) otherwise. Recorded in STATE_DIR/source/pin."""
    src = open_source(get_globals(), source, files)
    res = src.pin(commit.strip())
    result = PollResult(outcome_of(res), res.before, res.commit, res.fetched, res.reason, res.error, res.problems,
                        res.signature, res.pinned, time.time(), manifests=res.manifests)
    changes = manifest_changes(tree_of(src, res.before), res.manifests) if res.pinned else None
    if output == "json":
        print_json({**result.to_json(), "changes": changes})
    else:
        print_result(src, result, changes)
    return exit_code(result)


@command.command(short_help="Follow the source's ref again")
@source_option
@global_options
def unpin(source: str | None, files: dict[str, str | None]) -> int:
    """Drop the pin: the next sync (`xgen-declare sync`, or the daemon's poll) follows the ref again; the
    current commit stays until then."""
    src = open_source(get_globals(), source, files)
    try:
        was = src.pinned()
    except state.StateFileError:
        was = None  # a damaged pin file: removing it is what unpin is for
    try:
        removed = src.unpin()
    except state.SourceBusy as exc:
        raise StateBusyError(str(exc)) from None
    except state.StateFileError as exc:
        raise StateError(str(exc)) from None
    if removed:
        what = f"at {short(was['commit'])} " if was else ""
        click.echo(f"unpinned (was {what.strip() or 'a damaged pin'}): the next sync follows {src.spec.ref} again")
    else:
        click.echo(f"no pin was set: syncs follow {src.spec.ref}")
    return 0


@command.command(short_help="The source, its current commit, the pin and the last poll")
@source_option
@output_option(("text", "json"), "text")
@global_options
def status(source: str | None, files: dict[str, str | None], output: str) -> int:
    """Without fetching: the source (URL, ref, path), the commit current and since when, the pin if any,
    and the last poll (time, outcome, the commit fetched and why it was not applied, the error)."""
    src = open_source(get_globals(), source, files)
    data = report(src)
    if output == "json":
        print_json(data)
    else:
        print_report(data)
    return 1 if data["problems"] else 0
