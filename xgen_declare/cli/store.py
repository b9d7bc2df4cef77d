"""`xgen-declare store ls` and `store gc`: what the model store holds, who uses it, and removing what no
manifest references (never a file a running process uses)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from xgen_declare.cli.common import PATHS, eprint, get_globals, global_options, output_option, print_json, table
from xgen_declare.errors import ExitCode
from xgen_declare.reconciler.env import open_env
from xgen_declare.store.fetch import store_dir_of
from xgen_declare.store.gc import NOT_OURS, collect, ours as fetched_by_us, remove
from xgen_declare.store.ledger import forget
from xgen_declare.store.listing import StoredFile, list_store
from xgen_declare.store.partials import BUSY, NOT_OURS as HF_PARTIAL, UNKNOWN, collect_partials, list_partials, \
    remove_partial
from xgen_declare.store.usage import in_use, real, referenced, referenced_partials
from xgen_declare.store.wanted import wanted_sources


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) + "Z"


def _revision(f: StoredFile) -> str:
    if f.repo == "url":
        return f"sha256 {f.commit[:12]}" if f.commit else "-"
    if f.commit is None:
        return "(no snapshot)"
    return f"{','.join(f.revisions) or '-'} -> {f.commit[:12]}"


def _file_json(f: StoredFile, users: list[str], running: list[str], ours: bool) -> dict:
    return {"repo": f.repo, "revisions": list(f.revisions), "commit": f.commit, "file": f.path, "blob": str(f.blob),
            "size": f.size, "used_by": users, "in_use_by": running, "last_used": _when(f.last_used), "ours": ours}


@click.group(short_help="What the model store holds (ls) and removing what no manifest uses (gc)")
@global_options
def command() -> None:
    """The model store (config `store:`; default the HuggingFace cache): `ls` lists each file with the
    manifests that use it and whether xgen-declare fetched it, `gc` removes what xgen-declare fetched and
    none uses (--all: whoever fetched it)."""


@command.command("ls", short_help="Each file of the store: repo, revision -> commit, size, users, last used")
@click.argument("dirs", nargs=-1, metavar="[DIR]...", type=PATHS)
@output_option(("text", "json"), "text")
@global_options
def ls(dirs: tuple[str, ...], output: str) -> int:
    """Each file of the store: its repository, revision -> commit, size, the models whose manifests in DIR
    (default: the dir the state dir records) use it, the running processes that use it, when it was
    last used (the file's access time), and OURS: yes when xgen-declare fetched it (only those are what
    `store gc` removes without --all)."""
    g = get_globals()
    env = open_env(g, dirs, need_paths=False)
    store_dir = store_dir_of(env.config)
    items, problems = wanted_sources(env.paths, local=True, tokens=False) if env.paths else ([], [])
    for p in problems:
        eprint(p.format())
    files = list_store(store_dir)
    users = referenced(items, store_dir)
    running = in_use(env.store.root, store_dir, g.proc())
    mine = fetched_by_us(store_dir, files)
    rows = [(f, users.get(real(f.blob), []), running.get(real(f.blob), []), real(f.blob) in mine) for f in files]
    if output == "json":
        print_json([_file_json(f, u, r, o) for f, u, r, o in rows])
        return ExitCode.OK
    partials = list_partials(store_dir)
    if not files:
        click.echo(f"the store {store_dir} holds no model file")
        _partials_line(partials)
        return ExitCode.OK
    click.echo(table([[f.repo, _revision(f), f.path, _size(f.size),
                       ", ".join(u + [f"running: {x}" for x in r]) or "-", _when(f.last_used), "yes" if o else "no"]
                      for f, u, r, o in rows],
                     ["REPO", "REVISION", "FILE", "SIZE", "USED BY", "LAST USED", "OURS"]))
    total = sum({real(f.blob): f.size for f in files}.values())
    click.echo(f"{store_dir}: {len({real(f.blob) for f in files})} file(s), {_size(total)}")
    _partials_line(partials)
    return ExitCode.OK


def _partials_line(partials: list) -> None:
    """Where the rest of the disk went: the partial downloads (store/partials.py), not files of `ls`."""
    if partials:
        click.echo(f"and {len(partials)} partial download(s), {_size(sum(p.size for p in partials))}, the oldest "
                   f"last written {_when(min(p.mtime for p in partials))} (`store gc` removes those no manifest "
                   "wants; `doctor` says which resume)")


@command.command("gc", short_help="Remove the files xgen-declare fetched that no manifest references, LRU first")
@click.argument("dirs", nargs=-1, metavar="[DIR]...", type=PATHS)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing")
@click.option("--all", "everything", is_flag=True,
              help="Also remove files xgen-declare did not fetch (what other tools downloaded into the store) and "
                   "partial downloads it cannot tell it started (never one a download is writing)")
@output_option(("text", "json"), "text")
@global_options
def gc(dirs: tuple[str, ...], dry_run: bool, everything: bool, output: str) -> int:
    """Remove the files of the store that xgen-declare fetched and no manifest in DIR (default: the dir
    the state dir records) references, least recently used first, never a file a process the daemon
    runs uses. Every manifest must be readable (exit 1 otherwise: what it references would be unknown).
    Files other tools downloaded into the store (the default store is the HuggingFace cache) are kept
    and counted; --all removes them too (`store ls` shows which are ours). Partial downloads go the same
    way: one of a source no manifest wants (a hub source keeps every partial of its repository) and that
    no download is writing now (its lock is free); huggingface_hub's own partials, and any xgen-declare
    cannot tell it started, only with --all."""
    g = get_globals()
    env = open_env(g, dirs)
    store_dir = store_dir_of(env.config)
    items, problems = wanted_sources(env.paths, local=True, tokens=False)
    for p in problems:
        eprint(p.format())
    if any(p.severity == "error" for p in problems):
        eprint("error: store gc removes nothing while a manifest cannot be read: what it references is unknown; "
               "fix the problems above (xgen-declare validate DIR)")
        return ExitCode.INVALID_INPUT
    files = list_store(store_dir)
    mine = None if everything else fetched_by_us(store_dir, files)
    removals, kept = collect(files, referenced(items, store_dir), in_use(env.store.root, store_dir, g.proc()),
                             ours=mine)
    others = {real(k.file.blob): k.file.size for k in kept if k.why == NOT_OURS}
    failed, done = [], []
    for r in removals:
        if not dry_run:
            try:
                remove(r)
            except OSError as exc:
                failed.append((r.blob, exc))
                continue
        done.append(r)
    p_done, p_kept = _gc_partials(store_dir, items, mine, dry_run, failed)
    if (done or p_done) and not dry_run:
        try:
            forget(store_dir, [r.blob for r in done])  # a removed partial's line goes as a file no longer there
        except OSError as exc:  # stale lines name files no longer there: harmless
            eprint(f"warning: cannot update the store's ledger under {store_dir}: {exc.strerror or exc}")
    freed = sum(r.size for r in done) + sum(p.size for p in p_done)
    unattributed = [(p, why) for p, why in p_kept if why in (HF_PARTIAL, UNKNOWN)]
    verb = "would remove" if dry_run else "removed"
    if output == "json":
        print_json({"dry_run": dry_run, "all": everything, "store": str(store_dir), "bytes": freed,
                    "removed": [{"repo": r.files[0].repo, "files": [f.path for f in r.files], "blob": str(r.blob),
                                 "commits": [f.commit for f in r.files], "size": r.size,
                                 "last_used": _when(r.last_used)} for r in done],
                    "kept_in_use": [{"repo": k.file.repo, "file": k.file.path, "why": k.why} for k in kept
                                    if k.why.startswith("in use")],
                    "kept_not_ours": {"files": len(others), "bytes": sum(others.values())},
                    "failed": [{"blob": str(path), "error": exc.strerror or str(exc)} for path, exc in failed],
                    "partials_removed": [{"repo": p.repo, "path": str(p.path), "size": p.size,
                                          "last_written": _when(p.mtime)} for p in p_done],
                    "partials_kept": [{"repo": p.repo, "path": str(p.path), "size": p.size, "why": why}
                                      for p, why in p_kept],
                    "partials_kept_not_ours": {"files": len(unattributed),
                                               "bytes": sum(p.size for p, _ in unattributed)}})
    else:
        for r in done:
            f = r.files[0]
            click.echo(f"{verb} {f.repo} {', '.join(sorted({x.path for x in r.files}))} ({_revision(f)}), "
                       f"{_size(r.size)}, last used {_when(r.last_used)}")
        for p in p_done:
            click.echo(f"{verb} partial download {p.repo} {p.path.relative_to(store_dir)}, {_size(p.size)}, "
                       f"last written {_when(p.mtime)}")
        for k in kept:
            if k.why.startswith("in use"):
                click.echo(f"kept {k.file.repo} {k.file.path}: {k.why}")
        for p, why in p_kept:
            if (p, why) not in unattributed:
                click.echo(f"kept partial download {p.repo} {p.path.relative_to(store_dir)}: {why}")
        for path, exc in failed:
            eprint(f"error: cannot remove {path}: {exc.strerror or exc}; fix the store's permissions and run gc "
                   "again")
        partials = f" and {len(p_done)} partial download(s)" if p_done else ""
        click.echo(f"{verb} {len(done)} file(s){partials}, {freed} bytes ({_size(freed)}) from {store_dir}")
        if others:
            n = sum(others.values())
            click.echo(f"kept {len(others)} file(s), {n} bytes ({_size(n)}) that xgen-declare did not fetch "
                       "(other tools' downloads; store gc --all removes them too)")
        if unattributed:
            n = sum(p.size for p, _ in unattributed)
            click.echo(f"kept {len(unattributed)} partial download(s), {n} bytes ({_size(n)}) that xgen-declare "
                       "cannot tell it started (huggingface_hub's, or not in its ledger); store gc --all removes "
                       "them too, never one a download is writing")
    return ExitCode.FETCH_FAILED if failed else ExitCode.OK


def _gc_partials(store_dir: Path, items: list, mine: set[str] | None, dry_run: bool, failed: list):
    """The partial downloads removed (dry run: that would be), and those kept with why; a removal that fails
    goes to `failed`."""
    removals, kept = collect_partials(list_partials(store_dir), referenced_partials(items, store_dir), mine)
    done = []
    for p in removals:
        try:
            outcome = remove_partial(store_dir, p, dry_run=dry_run)
        except OSError as exc:
            failed.append((p.path, exc))
            continue
        if outcome == "removed":
            done.append(p)
        elif outcome == BUSY:
            kept.append((p, BUSY))
    return done, kept
