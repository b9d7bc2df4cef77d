"""A git source in the state dir: fetch the ref, resolve it to a commit, verify the commit's signature,
put its tree on disk and switch `current` to it atomically (trees.py).

    STATE/source/repo.git           a bare repository, fetched into (shallow: --depth=1)
    STATE/source/allowed_signers    the copy of source.verify.allowed_signers that git checks against
    STATE/source/trees/<commit>/    one commit's files        STATE/source/current -> trees/<commit>

`GitSource.sync()` never raises for anything the remote, the network or the commit does: it returns a
`SyncResult` saying which commit is current (the last good one), which was fetched, whether `current`
moved, and why not (`error`). An unreachable remote, a ref that vanished, an unsigned commit, a tree
too large or a path outside the repository all keep the last good commit current. A force push is
followed (the refspec is forced). A token is read from `token_file` at each sync (bounded reader) and
reaches git only through its environment.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import KIB, open_regular, read_text
from xgen_declare.sources import trees
from xgen_declare.sources.gitcmd import GitResult, GitRunner
from xgen_declare.sources.spec import GitSpec
from xgen_declare.sources.verify import copy_allowed_signers, signature_refusal

__all__ = ["GitSource", "SyncResult"]

FETCHED = "refs/xgen/fetched"


@dataclass(frozen=True)
class SyncResult:
    commit: str | None          # the commit `current` points at after this sync (the last good one)
    fetched: str | None         # the commit the ref resolved to this time (None: the fetch failed)
    changed: bool               # `current` moved to `fetched` in this sync
    error: str | None = None    # why `fetched` is not current, or why nothing was fetched
    manifests: Path | None = None  # the current commit's manifests directory (trees/<commit>/PATH)

    @property
    def ok(self) -> bool:
        return self.error is None


class GitSource:
    def __init__(self, spec: GitSpec, state_dir: str | os.PathLike, git: str = "git"):
        self.spec = spec
        self.root = Path(state_dir) / "source"
        self.repo = self.root / "repo.git"
        self.git = git
        self._lock = threading.Lock()  # a poll and a webhook may sync at once: one at a time

    def current(self) -> SyncResult:
        """What is current now, without fetching (after a restart: the last good commit)."""
        commit = trees.current_commit(self.root)
        return SyncResult(commit, None, False, None, self._manifests(commit))

    def sync(self) -> SyncResult:
        """Fetch, verify and switch to the ref's commit; the last good commit stays current on any failure."""
        with self._lock:
            return self._sync()

    def _sync(self) -> SyncResult:
        runner, error = self._runner()
        if runner is None:
            return self._kept(None, error)
        commit: str | None = None
        try:
            error = self._prepare(runner)
            if error:
                return self._kept(None, error)
            commit, error = self._fetch(runner)
            if commit is None:
                return self._kept(None, error)
            if self.spec.allowed_signers:
                error = signature_refusal(runner, self.repo, commit, self.root / "allowed_signers")
                if error:
                    return self._kept(commit, error)
            before = trees.current_commit(self.root)
            trees.tree_size(runner, self.repo, commit, self.spec.path, self.spec.max_tree_bytes)
            tree = trees.materialise(runner, self.repo, commit, self.root)
            manifests = trees.inside(tree, self.spec.path)
            if before != commit:
                trees.switch_to(self.root, commit)
            return SyncResult(commit, commit, before != commit, None, manifests)
        except trees.TreeError as exc:
            return self._kept(commit, str(exc))
        except OSError as exc:
            return self._kept(None, f"cannot write the source's state in {self.root}: {exc.strerror or exc}")

    def _kept(self, fetched: str | None, error: str | None) -> SyncResult:
        commit = trees.current_commit(self.root)
        return SyncResult(commit, fetched, False, error, self._manifests(commit))

    def _manifests(self, commit: str | None) -> Path | None:
        if commit is None:
            return None
        path = self.root / "trees" / commit
        return path / self.spec.path if self.spec.path else path

    def _runner(self) -> tuple[GitRunner | None, str | None]:
        token = None
        if self.spec.token_file:
            try:
                token = read_text(self.spec.token_file, 16 * KIB, what="a token file").strip()
            except FileRefused as exc:
                return None, f"source.token_file: {exc}"
            except (OSError, UnicodeDecodeError) as exc:
                why = getattr(exc, "strerror", None) or "not UTF-8 text"
                return None, f"source.token_file: cannot read {self.spec.token_file}: {why} (check the path)"
        for field, path in (("ssh_key_file", self.spec.ssh_key_file), ("known_hosts", self.spec.known_hosts)):
            if path:  # ssh reads it; a FIFO or a device would hang or flood it, so look first
                try:
                    os.close(open_regular(path))
                except FileRefused as exc:
                    return None, f"source.{field}: {exc}"
                except OSError as exc:
                    return None, f"source.{field}: cannot read {path}: {exc.strerror} (check the path and permissions)"
        return GitRunner(self.git, timeout=self.spec.timeout, token=token, token_user=self.spec.token_user,
                         ssh_key_file=self.spec.ssh_key_file, known_hosts=self.spec.known_hosts), None

    def _prepare(self, runner: GitRunner) -> str | None:
        (self.root / "trees").mkdir(parents=True, exist_ok=True)
        if not (self.repo / "HEAD").exists():
            res = runner.run("init", "-q", "--bare", str(self.repo))
            if not res.ok:
                return f"cannot create {self.repo}: {res.text()}"
        if self.spec.allowed_signers:
            return copy_allowed_signers(self.spec.allowed_signers, self.root / "allowed_signers")
        return None

    def _fetch(self, runner: GitRunner) -> tuple[str | None, str | None]:
        """The commit the ref names on the remote now, in the local repo; or the reason there is none."""
        ref = self.spec.ref
        res = self._git_fetch(runner, f"+{ref}:{FETCHED}")
        if not res.ok and self.spec.pinned and not res.timed_out and _missing_ref(res):
            # a server that refuses a want of an unadvertised commit: fetch its branches, then look
            res = self._git_fetch(runner, "+refs/heads/*:refs/xgen/heads/*", shallow=False)
            if res.ok:
                res = runner.run("update-ref", FETCHED, f"{ref}^{{commit}}", cwd=self.repo)
                if not res.ok:
                    return None, f"source.ref: commit {ref} is not on any branch of {self.spec.url}"
        if not res.ok:
            return None, self._fetch_error(res)
        rev = runner.run("rev-parse", "--verify", "--quiet", f"{FETCHED}^{{commit}}", cwd=self.repo)
        if not rev.ok:
            return None, f"source.ref: {ref!r} on {self.spec.url} does not name a commit"
        return rev.stdout.strip(), None

    def _git_fetch(self, runner: GitRunner, refspec: str, shallow: bool = True) -> GitResult:
        depth = ["--depth=1"] if shallow else []
        return runner.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--force", *depth,
                          self.spec.url, refspec, cwd=self.repo)

    def _fetch_error(self, res: GitResult) -> str:
        if res.timed_out:
            return f"cannot fetch {self.spec.url}: {res.text()} (is the remote slow or huge? source.timeout)"
        if _missing_ref(res):
            return f"source.ref: {self.spec.ref!r} does not exist in {self.spec.url} (check the branch, tag or commit)"
        if "could not read Username" in res.stderr or "Authentication failed" in res.stderr:
            why = ("the server refused the token of source.token_file (HTTP 401: check the token and its rights)"
                   if self.spec.token_file else "the server asks for credentials (HTTP 401: set source.token_file)")
            return f"cannot fetch {self.spec.url}: {why}; the last good commit stays current"
        return f"cannot fetch {self.spec.url}: {res.text()}; the last good commit stays current"


def _missing_ref(res: GitResult) -> bool:
    err = res.stderr
    return "couldn't find remote ref" in err or "not our ref" in err or "no such remote ref" in err \
        or "unadvertised object" in err
