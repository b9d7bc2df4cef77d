"""Shared by `sync` and `source` (and `run`): which git source (a git+URL argument or the config's
`source:`), the source's files as flags (`source_file_options`: one definition for every verb that takes a
git+URL), the manifest check a commit must pass (the manifest loader's errors), which manifests a switch
changed, the exit code of a result, and how a result is printed."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Callable

import click

from xgen_declare.errors import ExitCode, Problem, UsageError
from xgen_declare.manifests.load import load_paths
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.gitpoll import recorded_spec
from xgen_declare.sources.gc import describe as describe_gc
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.poller import Outcome, PollResult
from xgen_declare.sources.results import Refusal
from xgen_declare.sources.spec import GitSpec, parse_git_argument, with_files
from xgen_declare.cli.common import Globals

__all__ = ["FILE_FLAGS", "command_line_files", "exit_code", "manifest_changes", "manifest_check", "open_source",
           "print_report", "print_result", "short", "source_file_options", "source_option", "source_lines", "when"]

# GitSpec field -> the flag that sets it for a git+URL given on the command line (what `source:` would set)
FILE_FLAGS = {"allowed_signers": "--verify-allowed-signers", "token_file": "--token-file",
              "ssh_key_file": "--ssh-key-file", "known_hosts": "--known-hosts"}
_FILE_HELP = {  # field -> (which URLs it is for, what it is)
    "allowed_signers": ("", "apply only commits with an SSH signature by a key in FILE (ssh-keygen ALLOWED SIGNERS; "
                            "the config's source.verify.allowed_signers)"),
    "token_file": (" (https://)", "the file holding the access token (source.token_file; sent as HTTP Basic, never "
                                  "on a command line)"),
    "ssh_key_file": (" (ssh://)", "the private key (source.ssh_key_file)"),
    "known_hosts": (" (ssh://)", "the known_hosts file the host key is checked against (source.known_hosts)"),
}


def source_file_options(given_as: str) -> Callable[[Callable], Callable]:
    """--verify-allowed-signers, --token-file, --ssh-key-file and --known-hosts FILE on a verb; they reach it
    as one `files` argument (GitSpec field -> path or None), for `command_line_files`. `given_as` is how the
    verb takes a git+URL (`git+URL`, `--source git+URL`), for the help texts."""
    def decorate(f: Callable) -> Callable:
        @functools.wraps(f)
        def verb(*args, **kwargs):
            files = {field: kwargs.pop(field) for field in FILE_FLAGS}
            return f(*args, files=files, **kwargs)

        for field, flag in reversed(FILE_FLAGS.items()):
            urls, what = _FILE_HELP[field]
            verb = click.option(flag, field, metavar="FILE", help=f"With {given_as}{urls}: {what}")(verb)
        return verb
    return decorate


def source_option(f: Callable) -> Callable:
    """--source git+URL[#REF][//PATH] and the source's files (`source_file_options`): sync and source's verbs."""
    f = source_file_options("--source git+URL")(f)
    return click.option("--source", "source", metavar="git+URL[#REF][//PATH]",
                        help="The repository, when the config has no `source:`")(f)


def command_line_files(spec: GitSpec | None, files: dict[str, str | None], names: dict[str, str],
                       usage: tuple[str, str, str]) -> GitSpec | None:
    """`spec` (the git+URL of the command line; None without one) with the files of `files` (GitSpec field
    -> path, None: not given), each checked now (sources/spec.py with_files: a missing or unreadable file is
    an error naming the flag). A flag given without a git+URL is a UsageError naming it; `usage` is (what
    the flag is for, the command line that takes it, where the files come from without it)."""
    given = [names[field] for field, path in files.items() if path is not None]
    if not given:
        return spec
    if spec is None:
        what, form, otherwise = usage
        raise UsageError(f"{given[0]} is for {what} (`{form} {given[0]} FILE`); {otherwise}")
    return with_files(spec, files, names)


def open_source(g: Globals, argument: str | None, files: dict[str, str | None] | None = None) -> GitSource:
    """The git source a verb works on: `git+URL[#REF][//PATH]` when given (with `files`, the flags of
    `source_file_options`, checked before anything is read), else the config's `source:`."""
    spec: GitSpec | None = parse_git_argument(argument) if argument else None
    spec = command_line_files(spec, files or {}, FILE_FLAGS, (
        "a git+URL given as --source", "--source git+URL[#REF][//PATH]", "without --source, the config's "
        "`source:` (or the source this state dir's daemon follows) sets its own files"))
    config = g.load_config()
    spec = spec or config.git_spec()
    state_dir = g.resolve_state_dir(config)
    if spec is None:  # the source this state dir's daemon follows (`run git+URL`)
        spec = recorded_spec(StateStore(state_dir).daemon_info())
    if spec is None:
        where = f"the config {config.file} has no `source:` section" if config.file else "no config file"
        raise UsageError(f"no git source: {where}; give a config with `source: {{git: URL}}` (--config FILE), "
                         "or --source git+URL[#REF][//PATH]")
    return GitSource(spec, state_dir, check=manifest_check)


def manifest_check(manifests: Path) -> list[Problem]:
    """The errors `validate` would report for one commit's manifests directory (warnings pass)."""
    return load_paths([str(manifests)]).errors


def manifest_changes(old: Path | None, new: Path | None) -> dict[str, list[str]]:
    """Model names added, changed (spec or labels) and removed between two manifests directories."""
    before, after = _models(old), _models(new)
    return {"added": sorted(after.keys() - before.keys()), "removed": sorted(before.keys() - after.keys()),
            "changed": sorted(n for n in after.keys() & before.keys() if after[n] != before[n])}


def _models(path: Path | None) -> dict[str, object]:
    if path is None or not path.is_dir():
        return {}
    return {m.name: (m.spec.model_dump(mode="json"), m.labels) for m in load_paths([str(path)]).models}


def exit_code(result: PollResult) -> int:
    """0 for unchanged, switched or pinned; otherwise by the cause (README "Exit codes")."""
    if result.reason is None:
        return ExitCode.OK
    if result.reason in (Refusal.SETUP, Refusal.REF_MISSING):
        return ExitCode.INVALID_INPUT
    if result.reason is Refusal.BUSY:
        return ExitCode.BUSY
    return ExitCode.SOURCE_REFUSED


def short(commit: str | None) -> str:
    return commit[:12] if commit else "none"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "-"


def describe_source(spec: GitSpec) -> str:
    return _describe(spec.url, spec.ref, spec.path)


def _describe(url: str, ref: str, path: str) -> str:
    return url + (f"#{ref}" if ref != "HEAD" else "") + (f"//{path}" if path else "")


def print_report(data: dict) -> None:
    """`source status`: sources/report.py's object as text."""
    src, current, serving, pin, last = (data["source"], data["current"], data["serving"], data["pin"],
                                        data["last_poll"])
    click.echo(f"source:     {_describe(src['url'], src['ref'], src['path'])}")
    click.echo(f"current:    {current['commit'] or 'none (never synced)'}"
               + (f" (since {when(current['at'])})" if current["commit"] else ""))
    if pin:
        click.echo(f"pinned:     {pin['commit']} since {when(pin.get('at'))} (was {short(pin.get('before'))}; "
                   "`xgen-declare unpin` to follow the ref)")
    if last:
        fetched = f", fetched {short(last.get('fetched'))}" if last.get("fetched") else ""
        reason = f" ({last['reason']})" if last.get("reason") else ""
        click.echo(f"last poll:  {when(last.get('at'))}: {last.get('outcome')}{reason}{fetched}")
        if last.get("error"):
            click.echo(f"last error: {last['error']}")
    else:
        click.echo("last poll:  none recorded")
    if serving["commit"] and serving["commit"] != current["commit"]:
        click.echo(f"serving:    {serving['commit']} (a daemon reads this commit; it moves to the current one at "
                   "its next step)")
    if data.get("last_gc"):
        click.echo(f"last gc:    {when(data['last_gc']['at'])}: {describe_gc(data['last_gc'])}")
    for problem in data["problems"]:
        click.echo(f"error: {problem}", err=True)


def source_lines(data: dict) -> list[str]:
    """The source block of `status`: the repository, the commit served and since when, the pin, the last
    poll and its error."""
    src, last, pin = data["source"], data["last_poll"], data["pin"]
    applied = data["serving"] if data["serving"]["commit"] else data["current"]
    commit = f"{applied['short']} (applied {when(applied['at'])})" if applied["commit"] else \
        "none yet (no good commit fetched: the daemon waits for one)"
    lines = [f"source: {_describe(src['url'], src['ref'], src['path'])} at {commit}"
             + (f"; pinned at {short(pin['commit'])} (`xgen-declare unpin` to follow {src['ref']})" if pin else "")]
    if last:
        reason = f" ({last['reason']})" if last.get("reason") else ""
        fetched = f", fetched {short(last.get('fetched'))}" if last.get("fetched") else ""
        lines.append(f"source: last poll {when(last.get('at'))}: {last.get('outcome')}{reason}{fetched}"
                     + (f": {last['error']}" if last.get("error") else ""))
    else:
        lines.append("source: no poll recorded yet")
    lines += [f"source: {p}" for p in data["problems"]]
    return lines


def print_result(source: GitSource, result: PollResult, changes: dict[str, list[str]] | None) -> None:
    """The text report of one sync or pin: source, commits, verification, changed manifests, the refusal."""
    spec = source.spec
    click.echo(f"source:   {describe_source(spec)}")
    if result.outcome is Outcome.SWITCHED:
        click.echo(f"commit:   {short(result.old)} -> {short(result.new)} (switched)")
    elif result.outcome is Outcome.UNCHANGED:
        click.echo(f"commit:   {short(result.new)} (unchanged)")
    elif result.outcome is Outcome.PINNED:
        moved = f"{short(result.old)} -> " if result.old != result.new else ""
        ahead = (f"{spec.ref} is at {short(result.fetched)}, not applied" if result.fetched and
                 result.fetched != result.new else f"syncs fetch {spec.ref} and do not apply it")
        click.echo(f"commit:   {moved}{short(result.new)} (pinned; {ahead}: `xgen-declare unpin` to follow "
                   f"{spec.ref} again)")
    else:
        what = f"{short(result.fetched)} refused" if result.fetched else "nothing fetched"
        click.echo(f"commit:   {short(result.new)} stays current; {what} "
                   f"({result.reason.value if result.reason else '?'})")
    if not spec.allowed_signers:
        click.echo("verify:   not configured (source.verify.allowed_signers)")
    elif result.signature:
        click.echo(f"verify:   good signature by {result.signature}")
    elif result.reason in (Refusal.UNSIGNED, Refusal.BAD_SIGNATURE):
        click.echo(f"verify:   refused ({result.reason.value})")
    if changes is not None:
        parts = [f"{k}: {', '.join(v)}" for k, v in changes.items() if v]
        click.echo(f"changed:  {'; '.join(parts) if parts else 'no model manifest changed'}")
    if result.error:
        click.echo(f"error: {result.error}", err=True)
    for p in result.problems:
        click.echo(f"  {p.format()}", err=True)


def tree_of(source: GitSource, commit: str | None) -> Path | None:
    """The manifests directory of `commit` while its tree is kept (the current one and the one before it)."""
    if commit is None:
        return None
    path = source.root / "trees" / commit
    path = path / source.spec.path if source.spec.path else path
    return path if os.path.isdir(path) else None
