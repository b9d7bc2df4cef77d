"""Shared by `sync` and `source`: which git source (a git+URL argument or the config's `source:`), the
manifest check a commit must pass (the manifest loader's errors), which manifests a switch changed,
the exit code of a result, and how a result is printed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from xgen_declare.errors import ExitCode, Problem, UsageError
from xgen_declare.manifests.load import load_paths
from xgen_declare.processes.state_store import StateStore
from xgen_declare.reconciler.gitpoll import recorded_spec
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.poller import Outcome, PollResult
from xgen_declare.sources.results import Refusal
from xgen_declare.sources.spec import GitSpec, parse_git_argument
from xgen_declare.cli.common import Globals

__all__ = ["exit_code", "manifest_changes", "manifest_check", "open_source", "print_report", "print_result", "short",
           "source_lines", "when"]


def open_source(g: Globals, argument: str | None) -> GitSource:
    """The git source a verb works on: `git+URL[#REF][//PATH]` when given, else the config's `source:`."""
    config = g.load_config()
    spec: GitSpec | None = parse_git_argument(argument) if argument else config.git_spec()
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
