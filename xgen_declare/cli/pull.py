"""`xgen-declare pull [DIR]... [--model NAME]...`: fetch every hub and URL source the manifests name into the
store (config `store:`), without starting anything.

Order: the manifests' sources are read (a source that is no source, an unreadable token file, one file with
two checksums: exit 1, nothing fetched); the bytes still missing are summed from the hub's metadata and
checked against the store's free space (exit 9 before any byte when they do not fit); then each distinct
source is fetched once, however many models name it (a source pinned already: at its pin, unless --update),
and pinned to the commit fetched when no pin names it
yet (the first fetch pins, as the daemon's does: `down`, `plan` and the daemon then find it in the store
without the hub; offline nothing is pinned). Progress: a bar on a terminal, a line every ~2 s
when piped, JSON lines with `-o json`. A source that fails is reported with its reason and the others go
on; the exit code is then 9 (README "Exit codes").
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, TextIO

import click

from xgen_declare.cli.common import PATHS, get_globals, global_options, output_option
from xgen_declare.errors import ExitCode, FetchError
from xgen_declare.names import is_commit_id
from xgen_declare.reconciler.env import open_env
from xgen_declare.reconciler.fetching import read_pin, write_pin
from xgen_declare.store.fetch import bytes_needed, fetch, is_offline, store_dir_of
from xgen_declare.store.preflight import check_space, gib, store_writable
from xgen_declare.store.usage import mark_used
from xgen_declare.store.wanted import Wanted, group_by_source, wanted_sources

disk_usage = shutil.disk_usage  # seam: tests give a full disk


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


class Progress:
    """Prints one source's progress: a line every `period` seconds (a bar redrawn in place on a terminal,
    JSON lines with `json_lines`); `clock` is a seam."""

    def __init__(self, out: TextIO, *, json_lines: bool, tty: bool, clock: Callable[[], float] = time.monotonic,
                 period: float | None = None) -> None:
        self.out, self.json_lines, self.tty, self.clock = out, json_lines, tty and not json_lines, clock
        self.period = period if period is not None else (0.2 if self.tty else 2.0)
        self.models: list[str] = []
        self.source = self.file = ""
        self.t0 = self.last = 0.0
        self.base: int | None = None
        self.drawn = False

    def begin(self, models: list[str], source: str, file: str) -> None:
        self.models, self.source, self.file = models, source, file
        self.t0, self.last, self.base, self.drawn = self.clock(), float("-inf"), None, False

    def on_file(self, path: str) -> None:
        self.file = path

    def rate(self, done: int) -> float:
        elapsed = self.clock() - self.t0
        return (done - (self.base or 0)) / elapsed if elapsed > 0 else 0.0

    def update(self, done: int, total: int) -> None:
        if self.base is None:
            self.base = done  # what the store already held: not counted in the rate
        now = self.clock()
        if now - self.last < self.period:
            return
        self.last = now
        rate = self.rate(done)
        if self.json_lines:
            return self.emit({"event": "progress", "models": self.models, "source": self.source, "file": self.file,
                              "done": done, "total": total, "rate": round(rate)})
        text = f"  {self.file}  {_mib(done)}/{_mib(total)} MiB  {_mib(int(rate))} MiB/s"
        if self.tty:
            width = 30
            filled = int(width * done / total) if total else width
            self.out.write(f"\r  [{'#' * filled}{'.' * (width - filled)}]{text}\x1b[K")
            self.out.flush()
            self.drawn = True
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def end_line(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.drawn = False

    def emit(self, event: dict) -> None:
        self.out.write(json.dumps(event, default=str) + "\n")
        self.out.flush()


def _say(progress: Progress, event: dict, text: str) -> None:
    progress.end_line()
    if progress.json_lines:
        progress.emit(event)
    else:
        progress.out.write(text + "\n")
        progress.out.flush()


def _label(group: list[Wanted]) -> str:
    return f"{', '.join(w.name for w in group)}: {group[0].source.shown()}"


@click.command(short_help="Fetch the models' hub and URL sources into the store")
@click.argument("dirs", nargs=-1, metavar="[DIR]...", type=PATHS)
@click.option("--model", "names", multiple=True, metavar="NAME", help="Only this model's source (repeatable)")
@click.option("--update", is_flag=True, help="Resolve each branch or tag again and pin the models to the new commit: "
              "a running daemon rolls them out (without it, the daemon keeps the commit it pinned first)")
@output_option(("text", "json"), "text")
@global_options
def command(dirs: tuple[str, ...], names: tuple[str, ...], output: str, update: bool = False) -> int:
    """Fetch every hub (hf://) and URL source the manifests in DIR name into the store, starting nothing.

    DIR defaults to the manifests dir the state dir records. A file several models name is fetched once;
    a partial download is resumed. Offline (store.offline, HF_HUB_OFFLINE=1) nothing is fetched: each
    source is looked up in the store. Exit 0 when every source is in the store, 1 for a bad source, 9
    when a fetch failed or the disk preflight says the files do not fit.
    """
    g = get_globals()
    env = open_env(g, dirs)
    store_dir = store_dir_of(env.config)
    out = sys.stdout
    progress = Progress(out, json_lines=output == "json", tty=output != "json" and out.isatty())
    items, problems = wanted_sources(env.paths, list(names) or None)
    for p in problems:
        if progress.json_lines:
            progress.emit({"event": "problem", **p.to_json()})
        else:
            click.echo(p.format(), err=True)
    if any(p.severity == "error" for p in problems):
        return ExitCode.INVALID_INPUT
    pins = Path(env.store.root) / "pins"
    groups = group_by_source(items)
    if not update:  # what the daemon serves: a source pinned before is fetched at its pin, not where its branch is
        groups = [[_at_pin(w, pins) for w in group] for group in groups]
    offline = is_offline(env.config.store)
    if offline:
        why = "store.offline" if env.config.store.offline else "HF_HUB_OFFLINE"
        _say(progress, {"event": "offline", "store": str(store_dir), "why": why},
             f"offline ({why}): nothing is fetched; using only what the store {store_dir} holds")
    if not groups:
        _say(progress, {"event": "done", "sources": 0, "failed": 0},
             f"no model in {', '.join(env.paths)} names a hub or URL source: nothing to fetch")
        return ExitCode.OK
    endpoint = os.environ.get("HF_ENDPOINT") or None
    failed: dict[int, FetchError] = {}
    if not offline:
        if not _preflight(groups, env.config.store, store_dir, endpoint, progress, failed):
            return ExitCode.FETCH_FAILED
    for i, group in enumerate(groups):
        if i in failed:
            continue
        try:
            commit = _pull_one(group, env.config.store, store_dir, endpoint, progress)
            for w in group:  # the first fetch pins (README "Pinning"): a later look finds it without network
                if update or (not offline and read_pin(pins, w.source) is None):
                    write_pin(pins, w.source, commit)
        except FetchError as exc:
            failed[i] = exc
            _failed(progress, group, exc)
    n_models = sum(len(g) for g in groups)
    _say(progress, {"event": "done", "sources": len(groups), "failed": len(failed)},
         f"{len(groups) - len(failed)} of {len(groups)} source(s) in the store {store_dir} "
         f"({n_models} model(s))" + (f"; {len(failed)} failed" if failed else ""))
    return ExitCode.FETCH_FAILED if failed else ExitCode.OK


def _at_pin(w: Wanted, pins: Path) -> Wanted:
    """`w` with its hub source at the commit it is pinned to (a branch or tag pinned by an earlier fetch), so
    that pull fetches what the daemon serves; unchanged when not pinned (its fetch then pins it)."""
    src = w.source
    if src.kind != "hf" or is_commit_id(src.revision):
        return w
    commit = read_pin(pins, src)
    return w if commit is None else replace(w, source=replace(src, revision=commit))


def _failed(progress: Progress, group: list[Wanted], exc: FetchError) -> None:
    _say(progress, {"event": "failed", "models": [w.name for w in group], "source": group[0].source.shown(),
                    "where": group[0].where, "reason": exc.reason, "blocked": exc.blocked},
         f"error: {_label(group)} ({group[0].where}): {exc.reason}")


def _preflight(groups: list[list[Wanted]], store, store_dir, endpoint: str | None, progress: Progress,
               failed: dict[int, FetchError]) -> bool:
    """Sum what every source still needs (hub metadata, no file byte; a file two sources share once) and
    check the disk once."""
    per_blob: dict[str, int] = {}
    for i, group in enumerate(groups):
        try:
            per_blob.update(bytes_needed(group[0].source, store, store_dir, endpoint=endpoint, token=group[0].token))
        except FetchError as exc:
            failed[i] = exc
            _failed(progress, group, exc)
    needed = sum(per_blob.values())
    if not needed:
        return True
    try:
        store_writable(store_dir)
        check_space(needed, store_dir, store, disk_usage)
    except FetchError as exc:
        _say(progress, {"event": "preflight", "needed": needed, "ok": False, "reason": exc.reason},
             f"error: {exc.reason}")
        return False
    _say(progress, {"event": "preflight", "needed": needed, "ok": True},
         f"{gib(needed) if needed >= 2**30 else _mib(needed) + ' MiB'} to fetch into {store_dir}")
    return True


def _pull_one(group: list[Wanted], store, store_dir, endpoint: str | None, progress: Progress) -> str:
    """Fetch one source for its models; returns the commit (a URL source: its sha256)."""
    w = group[0]
    first = w.source.file or (w.source.url or "").rsplit("/", 1)[-1] or str(w.source.repo)
    progress.begin([x.name for x in group], w.source.shown(), first)
    if not progress.json_lines:
        progress.out.write(_label(group) + "\n")
    got = fetch(w.source, store, store_dir, endpoint=endpoint, token=w.token, progress=progress.update,
                disk_usage=disk_usage, on_file=progress.on_file)
    mark_used(got.paths)
    seconds = progress.clock() - progress.t0
    size = sum(f.size or 0 for f in got.files)
    commit = got.commit[:12]
    if got.fetched_bytes:
        rate = got.fetched_bytes / seconds if seconds > 0 else 0
        words = f"fetched {_mib(got.fetched_bytes)} MiB in {seconds:.1f} s ({_mib(int(rate))} MiB/s)"
    else:
        words = "already in the store"
    pin = f"sha256 {commit}" if w.source.kind == "url" else f"commit {commit}"
    _say(progress, {"event": "fetched", "models": [x.name for x in group], "source": w.source.shown(),
                    "commit": got.commit, "files": [f.path for f in got.files], "path": str(got.local_path),
                    "bytes": size, "fetched_bytes": got.fetched_bytes, "reused": list(got.reused)},
         f"  {words}: {len(got.files)} file(s), {_mib(size)} MiB, {pin} -> {got.local_path}")
    return got.commit

