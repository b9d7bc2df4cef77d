"""One commit's tree on disk, switched to atomically.

    ROOT/trees/<commit>/      the commit's files (`git archive` extracted with tarfile's `data` filter:
                              no absolute names, no `..`, no link pointing outside the tree)
    ROOT/current -> trees/<commit>      a symlink, replaced by rename(2): a reader sees the old commit or
                                        the new one, never a mix
    ROOT/serving -> trees/<commit>      the commit a daemon reads (reconciler/gitpoll.py): moved to `current`
                                        by the daemon's control loop between two passes, so that one pass
                                        reads one commit through a path that stays the same (an empty
                                        directory until the first good commit)

A tree is extracted into `trees/.tmp-<commit>-<pid>` and renamed into place only once whole, so a
crash mid-extraction leaves no half tree under a commit's name. A reader should resolve `current` once
(`current_tree`) and read every file of one pass from that commit's directory. After a swap, trees
other than the current one, the one before it and the one a daemon serves are removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from xgen_declare.sources import gitcmd
from xgen_declare.sources.gitcmd import GitRunner

__all__ = ["SERVING", "TreeError", "commit_of", "current_commit", "current_tree", "is_commit", "materialise",
           "serve", "serving_commit", "switch_to", "tree_size"]

KEEP = 2  # the current tree and the one before it
SERVING = "serving"  # ROOT/serving: the commit a running daemon reads


class TreeError(Exception):
    """A commit's tree cannot be used; the message is the reason, for SyncResult.error."""


def tree_size(runner: GitRunner, repo: Path, commit: str, path: str, limit: int) -> None:
    """Refuse (TreeError) a missing `path`, one that is not a directory, or a tree larger than `limit`."""
    if path:
        res = runner.run("ls-tree", "-z", "--full-tree", commit, "--", path, cwd=repo)
        if not res.ok:
            raise TreeError(f"cannot list commit {commit[:12]}: {res.text()}")
        entry = res.stdout.split("\x00")[0]
        if not entry:
            raise TreeError(f"source.path: {path!r} does not exist in commit {commit[:12]} "
                            "(check the path, relative to the repository's top)")
        mode, kind = entry.split()[:2]
        if kind != "tree":
            what = "a symlink" if mode == "120000" else "a file"
            raise TreeError(f"source.path: {path!r} is {what} in commit {commit[:12]}, not a directory "
                            "(name the directory that holds the manifests)")
    res = runner.run("ls-tree", "-r", "-l", "-z", "--full-tree", commit, cwd=repo)
    if not res.ok:
        raise TreeError(f"cannot list commit {commit[:12]}: {res.text()}")
    if res.truncated:  # the listing alone is megabytes: far more files than a config repo holds
        raise TreeError(f"commit {commit[:12]} holds too many files for a source (its listing is over "
                        f"{gitcmd.OUTPUT_LIMIT // (1024 * 1024)} MiB); keep the config repository small")
    total = 0
    for entry in filter(None, res.stdout.split("\x00")):
        size = entry.split()[3] if len(entry.split()) > 3 else "-"
        total += int(size) if size.isdigit() else 0
        if total > limit:
            raise TreeError(f"commit {commit[:12]} holds more than {limit / (1024 * 1024):g} MiB of files, the "
                            "limit for a source (keep models out of the config repo, or raise source.max_tree_mib)")


def materialise(runner: GitRunner, repo: Path, commit: str, root: Path) -> Path:
    """trees/<commit> holding the commit's files (made if missing); TreeError when the archive is unsafe."""
    final = root / "trees" / commit
    if final.is_dir():
        return final
    tmp = root / "trees" / f".tmp-{commit}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _extract(runner, repo, commit, tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _extract(runner: GitRunner, repo: Path, commit: str, dest: Path) -> None:
    argv = (runner.git, "archive", "--format=tar", commit)
    proc = subprocess.Popen(argv, cwd=repo, env=runner.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                try:
                    tar.extract(member, dest, filter="data")
                except tarfile.FilterError as exc:
                    raise TreeError(f"commit {commit[:12]}: {member.name!r} points outside the repository "
                                    f"({exc}); it is not applied (remove the link from the repository)") from None
    except tarfile.TarError as exc:
        raise TreeError(f"cannot unpack commit {commit[:12]}: {exc}") from None
    finally:
        proc.stdout.close()
        try:
            err = proc.communicate(timeout=runner.timeout)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
    if proc.returncode != 0:
        raise TreeError(f"git archive {commit[:12]} failed: {err.decode('utf-8', 'replace').strip()}")


def inside(tree: Path, path: str) -> Path:
    """tree/path, refused (TreeError) when it resolves outside `tree` (a link in the path) or is no directory."""
    target = (tree / path).resolve() if path else tree.resolve()
    if target != tree.resolve() and tree.resolve() not in target.parents:
        raise TreeError(f"source.path: {path!r} leads outside the repository (a symlink on the way); "
                        "it is not applied (name a real directory)")
    if not target.is_dir():
        raise TreeError(f"source.path: {path!r} is not a directory in this commit")
    return target


def switch_to(root: Path, commit: str) -> None:
    """Point ROOT/current at trees/<commit> with one rename(2), then drop trees no longer needed."""
    before = current_commit(root)
    link = root / f".current-{os.getpid()}"
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.join("trees", commit), link)
    os.replace(link, root / "current")
    _fsync_dir(root)
    keep = {commit, before, serving_commit(root)} - {None}
    for old in (root / "trees").iterdir():
        if old.name not in keep and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)


def current_commit(root: Path) -> str | None:
    """The commit `current` points at, or None when there is none (first sync, or a broken link)."""
    return _link_commit(root, "current")


def _link_commit(root: Path, name: str) -> str | None:
    try:
        target = os.readlink(root / name)
    except OSError:
        return None
    name = os.path.basename(target)
    return name if (root / "trees" / name).is_dir() else None


def serving_commit(root: Path) -> str | None:
    """The commit ROOT/serving points at (the one a daemon reads), or None."""
    return _link_commit(root, SERVING)


def serve(root: Path, commit: str) -> None:
    """Point ROOT/serving at trees/<commit> with one rename(2) (no tree is removed here)."""
    link = root / f".{SERVING}-{os.getpid()}"
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.join("trees", commit), link)
    target = root / SERVING
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)  # the empty directory a daemon reads before the first good commit
    os.replace(link, target)
    _fsync_dir(root)


def commit_of(path: str) -> str | None:
    """The commit whose tree holds the file at `path` (through `serving` or `current`), when it is one
    of a source's trees: ROOT/trees/<40 hex>/... beside ROOT/repo.git. None for any other file."""
    real = Path(os.path.realpath(path))
    for tree in real.parents:
        if tree.parent.name == "trees" and is_commit(tree.name) and (tree.parent.parent / "repo.git").is_dir():
            return tree.name
    return None


def is_commit(name: str) -> bool:
    return len(name) == 40 and all(c in "0123456789abcdef" for c in name)


def current_tree(root: Path) -> Path | None:
    """trees/<commit> of the current commit, resolved once (read one pass from it, not via `current`)."""
    commit = current_commit(root)
    return root / "trees" / commit if commit else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
