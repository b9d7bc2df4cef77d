"""`xgen-declare sync [SOURCE] [-o json]`: poll the git source once, now."""

from __future__ import annotations

import click

from xgen_declare.sources.poller import Outcome, Poller
from xgen_declare.cli.common import eprint, get_globals, global_options, output_option, print_json
from xgen_declare.cli.sourceview import (describe_source, exit_code, manifest_changes, open_source, print_result,
                                         source_option, tree_of)


@click.command(short_help="Fetch the git source now and apply its commit")
@source_option
@output_option(("text", "json"), "text")
@global_options
def command(source: str | None, files: dict[str, str | None], output: str) -> int:
    """Fetch the git source (the config's `source:`, or --source) once, now, as the daemon's poll does: the
    ref's commit is verified (source.verify), must descend from the current commit (unless
    source.allow_force_push), its manifests must validate, then STATE_DIR/source/current switches to it
    atomically. Prints old -> new commit, the verification and which model manifests were added,
    changed or removed. A refused commit leaves the last good one current: exit 8 (a refused commit or
    an unreachable remote), 1 (an unreadable key/token file, a ref that does not exist), 4 (another
    sync holds the source). While `source pin` holds a commit, the ref is fetched and not applied.

    With --source git+URL, the flags --verify-allowed-signers, --token-file, --ssh-key-file and
    --known-hosts set what the config's `source:` would (checked at once: a missing file is an error
    naming the flag, exit 1):

    \b
      xgen-declare sync --source git+https://git.example.org/ops/llm.git#main//manifests \\
          --verify-allowed-signers keys/allowed_signers --token-file secrets/git-token"""
    src = open_source(get_globals(), source, files)
    poller = Poller(src)
    result = poller.poll_once()
    changed = result.outcome is Outcome.SWITCHED or (result.outcome is Outcome.PINNED and result.old != result.new)
    changes = manifest_changes(tree_of(src, result.old), result.manifests) if changed else None
    if output == "json":
        print_json({"source": {"url": src.spec.url, "ref": src.spec.ref, "path": src.spec.path,
                               "text": describe_source(src.spec)},
                    **result.to_json(), "changes": changes, "verified": bool(src.spec.allowed_signers)})
    else:
        print_result(src, result, changes)
    if poller.record_error:
        eprint(f"warning: {poller.record_error}")
    return exit_code(result)
