"""A git source in the state dir: fetch the ref, resolve it to a commit, verify the commit's signature,
check that it descends from the current one, put its tree on disk, validate its manifests and switch
`current` to it atomically (trees.py).

    STATE/source/repo.git           a bare repository, fetched into (shallow: --depth=1)
    STATE/source/allowed_signers    the copy of source.verify.allowed_signers that git checks against
    STATE/source/trees/<commit>/    one commit's files        STATE/source/current -> trees/<commit>
    STATE/source/pin, followed, lock   state.py (followed: the URL and ref `current` was synced from)
    STATE/source/stopped            stopped.py: a fetch stopped at its size bound is not tried again while
                                    the ref names the same commit (ls-remote before each fetch)

`GitSource.gc()` drops the objects no kept commit reaches (gc.py), so a branch force-pushed for months
does not grow repo.git without bound; the daemon's poller thread calls it every so often.

`GitSource.sync()` never raises for anything the remote, the network or the commit does: it returns a
`SyncResult` saying which commit is current (the last good one), which was fetched, whether `current`
moved, and why not (`error`, its cause typed as `reason`). An unreachable remote, a ref that vanished,
an unsigned commit, a rewind (history.py), a tree too large, a path outside the repository or manifests
that fail `check` all keep the last good commit current. While a pin is recorded (`pin()`), a sync
fetches the ref (to report it) but keeps the pinned commit current. A token is read from `token_file`
at each sync (bounded reader) and reaches git only through its environment.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from xgen_declare.errors import FileRefused, Problem
from xgen_declare.readers.bounded import KIB, open_regular
from xgen_declare.readers.secret import read_secret
from xgen_declare.sources import state, stopped, trees
from xgen_declare.sources.gc import GcResult, collect
from xgen_declare.sources.gc import record as record_gc
from xgen_declare.sources.gitcmd import GitResult, GitRunner, remove_leftovers
from xgen_declare.sources.history import descends
from xgen_declare.sources.results import Refusal, SyncResult
from xgen_declare.sources.spec import GitSpec
from xgen_declare.sources.verify import check_signature, copy_allowed_signers

__all__ = ["Check", "GitSource", "Refusal", "SyncResult"]

log = logging.getLogger("xgen_declare.sources.git")

FETCHED = "refs/xgen/fetched"
CURRENT = "refs/xgen/current"  # keeps the current commit's objects while the ref moves elsewhere
PINNED = "refs/xgen/pinned"
FOLLOWED = "followed"  # STATE/source/followed: the URL and ref the current commit was synced from
FETCH_FACTOR = 4  # a fetch may write this many times source.max_tree_mib (gitcmd.py stops it past that)
_COMMIT_TEXT = re.compile(r"[0-9a-f]{7,64}")

# validates one commit's manifests directory; the problems (errors) refuse the commit
Check = Callable[[Path], list[Problem]]


class _Refused(Exception):
    def __init__(self, reason: Refusal, error: str, fetched: str | None = None, problems: tuple = ()):
        self.reason, self.error, self.fetched, self.problems = reason, error, fetched, problems
        super().__init__(error)


class GitSource:
    def __init__(self, spec: GitSpec, state_dir: str | os.PathLike, git: str = "git", check: Check | None = None):
        self.spec = spec
        self.root = Path(state_dir) / "source"
        self.repo = self.root / "repo.git"
        self.git = git
        self.check = check
        self._lock = threading.Lock()  # a poll and a webhook may sync at once: one at a time

    def current(self) -> SyncResult:
        """What is current now, without fetching (after a restart: the last good commit)."""
        commit = trees.current_commit(self.root)
        return SyncResult(commit, None, False, None, self._manifests(commit), before=commit,
                          pinned=self._pin_or_none())

    def sync(self) -> SyncResult:
        """Fetch, verify and switch to the ref's commit; the last good commit stays current on any failure."""
        return self._serialised(self._sync)

    def pin(self, commit: str) -> SyncResult:
        """Make `commit` current and keep it so (recorded in STATE/source/pin) until `unpin()`; it is fetched
        if it is not here yet, and verified and checked like any commit. A refusal leaves no pin."""
        return self._serialised(lambda runner, before: self._pin(runner, before, commit))

    def unpin(self) -> bool:
        """Drop the pin (the next sync follows the ref again); True when there was one."""
        with self._lock, state.locked(self.root, self.spec.timeout * 2 + 10):
            return state.clear_pin(self.root)

    def pinned(self) -> dict | None:
        """The pin record, or None; StateFileError when the file is damaged."""
        return state.read_pin(self.root)

    def gc(self, now: float | None = None) -> GcResult:
        """Remove what the current, pinned, last fetched and on-disk commits do not need (sources/gc.py),
        under the source's lock; never raises for git or the state dir (GcResult.error says why). The result
        is recorded in STATE/source/last_gc (gc.record; `now`: its Unix time, default the clock's)."""
        result = self._gc()
        try:
            record_gc(self.root, result, time.time() if now is None else now)
        except state.StateFileError as exc:
            log.warning("source: the result of git gc is not recorded: %s", exc)
        return result

    def _gc(self) -> GcResult:
        try:
            with self._lock, state.locked(self.root, self.spec.timeout * 2 + 10):
                if not (self.repo / "HEAD").exists():
                    return GcResult(None, None, (), None)
                remove_leftovers(self.repo)
                keep_refs = {FETCHED, CURRENT}
                try:
                    pin = state.read_pin(self.root)
                except state.StateFileError:
                    pin = {}  # damaged: keep the pinned commit until `unpin` settles it
                if pin is not None:
                    keep_refs.add(PINNED)
                on_disk = {p.name for p in (self.root / "trees").iterdir() if trees.is_commit(p.name)}
                commits = on_disk | ({pin["commit"]} if pin else set())
                return collect(GitRunner(self.git, timeout=self.spec.timeout), self.repo, keep_refs, commits)
        except state.StateFileError as exc:
            return GcResult(None, None, (), str(exc))
        except OSError as exc:
            return GcResult(None, None, (), f"cannot read {self.root}: {exc.strerror or exc}")

    def _serialised(self, step: Callable[[GitRunner, str | None], SyncResult]) -> SyncResult:
        with self._lock:
            try:
                with state.locked(self.root, self.spec.timeout * 2 + 10):
                    before = trees.current_commit(self.root)
                    try:
                        runner = self._runner()
                        self._prepare(runner)
                        return step(runner, before)
                    except _Refused as exc:
                        return self._kept(before, exc)
            except state.StateFileError as exc:
                why = Refusal.BUSY if isinstance(exc, state.SourceBusy) else Refusal.SETUP
                return self._kept(trees.current_commit(self.root), _Refused(why, str(exc)))
            except OSError as exc:
                why = f"cannot write the source's state in {self.root}: {exc.strerror or exc}"
                return self._kept(trees.current_commit(self.root), _Refused(Refusal.SETUP, why))

    def _sync(self, runner: GitRunner, before: str | None) -> SyncResult:
        pin = state.read_pin(self.root)
        if pin is not None:
            return self._hold(runner, before, pin["commit"])
        commit = self._fetch(runner)
        signature = self._verify(runner, commit)
        if before and before != commit and not self.spec.pinned and not self.spec.allow_force_push \
                and self._same_ref_as(before):
            self._fast_forward(runner, before, commit)
        manifests = self._apply(runner, commit, before)
        if before != commit:
            try:
                state.write_json(self.root / FOLLOWED, {"url": self.spec.url, "ref": self.spec.ref, "commit": commit})
            except state.StateFileError:
                pass  # `current` has moved; without this record the next sync is only stricter
        return SyncResult(commit, commit, before != commit, None, manifests, before=before, signature=signature)

    def _same_ref_as(self, before: str) -> bool:
        """`before` came from this URL and ref (a changed source.git or source.ref is no force push)."""
        try:
            followed = state.read_json(self.root / FOLLOWED)
        except state.StateFileError:
            return True  # unknown: the stricter answer
        if not followed or followed.get("commit") != before:
            return True
        return (followed.get("url"), followed.get("ref")) == (self.spec.url, self.spec.ref)

    def _pin(self, runner: GitRunner, before: str | None, text: str) -> SyncResult:
        commit = self._resolve(runner, text)
        signature = self._verify(runner, commit)
        manifests = self._apply(runner, commit, before)
        runner.run("update-ref", PINNED, commit, cwd=self.repo)
        state.write_pin(self.root, commit, before)
        return SyncResult(commit, commit, before != commit, None, manifests, before=before, pinned=commit,
                          signature=signature)

    def _hold(self, runner: GitRunner, before: str | None, pin: str) -> SyncResult:
        """A pin is recorded: the ref is fetched (to report what it names), `current` stays at the pin."""
        try:
            fetched, error = self._fetch(runner), None
        except _Refused as exc:
            fetched, error = None, exc
        manifests = self._manifests(pin)
        if before != pin:  # the pinned tree was cleaned away, or `current` moved by hand
            manifests = self._apply(runner, pin, before)
        return SyncResult(pin, fetched, before != pin, error.error if error else None, manifests,
                          error.reason if error else None, before=before, pinned=pin)

    def _verify(self, runner: GitRunner, commit: str) -> str | None:
        if not self.spec.allowed_signers:
            return None
        sig = check_signature(runner, self.repo, commit, self.root / "allowed_signers")
        if sig.refusal:
            raise _Refused(Refusal.UNSIGNED if sig.letter == "N" else Refusal.BAD_SIGNATURE, sig.refusal, commit)
        return f"{sig.signer} ({sig.key})" if sig.key else sig.signer

    def _fast_forward(self, runner: GitRunner, before: str, commit: str) -> None:
        ok, failed = descends(runner, self.repo, self.spec.url, self.spec.ref, before, commit)
        if failed is not None:
            raise _Refused(Refusal.TIMEOUT if failed.timed_out else Refusal.FETCH_FAILED,
                           f"cannot fetch the history of {commit[:12]} from {self.spec.url} to check that it "
                           f"follows {before[:12]}: {failed.text()}; the last good commit stays current", commit)
        if not ok:
            raise _Refused(Refusal.NOT_FAST_FORWARD,
                           f"commit {commit[:12]} does not descend from the current commit {before[:12]} (the "
                           f"branch was force-pushed to other or older history); it is not applied (set "
                           f"source.allow_force_push: true to follow rewritten history, or roll back on purpose "
                           f"with `xgen-declare pin COMMIT`)", commit)

    def _apply(self, runner: GitRunner, commit: str, before: str | None) -> Path:
        """Size check, unpack, validate, then switch `current` to `commit` (a no-op when it is current)."""
        try:
            trees.tree_size(runner, self.repo, commit, self.spec.path, self.spec.max_tree_bytes)
            tree = trees.materialise(runner, self.repo, commit, self.root)
            manifests = trees.inside(tree, self.spec.path)
        except trees.TreeError as exc:
            raise _Refused(Refusal.TREE_INVALID, str(exc), commit) from None
        problems = self._problems(tree, manifests)
        if problems:
            if commit != before:
                shutil.rmtree(tree, ignore_errors=True)
            raise _Refused(Refusal.MANIFESTS_INVALID,
                           f"commit {commit[:12]}: {len(problems)} manifest problem(s), it is not applied: "
                           + "; ".join(p.format() for p in problems[:3]) + (" ..." if len(problems) > 3 else ""),
                           commit, tuple(problems))
        if before != commit:
            runner.run("update-ref", CURRENT, commit, cwd=self.repo)
            trees.switch_to(self.root, commit)
        return manifests

    def _problems(self, tree: Path, manifests: Path) -> list[Problem]:
        """`check`'s errors, each file named relative to the repository (manifests/a.yaml, not trees/...)."""
        if self.check is None:
            return []
        out = []
        for p in self.check(manifests):
            if p.severity != "error":
                continue
            try:
                p = replace(p, file=str(Path(p.file).resolve().relative_to(tree.resolve())))
            except ValueError:
                pass
            out.append(p)
        return out

    def _kept(self, before: str | None, exc: _Refused) -> SyncResult:
        commit = trees.current_commit(self.root)
        return SyncResult(commit, exc.fetched, False, exc.error, self._manifests(commit), exc.reason,
                          exc.problems, before=before, pinned=self._pin_or_none())

    def _pin_or_none(self) -> str | None:
        try:
            pin = state.read_pin(self.root)
        except state.StateFileError:
            return None
        return pin["commit"] if pin else None

    def _manifests(self, commit: str | None) -> Path | None:
        if commit is None:
            return None
        path = self.root / "trees" / commit
        return path / self.spec.path if self.spec.path else path

    def _runner(self) -> GitRunner:
        token = None
        if self.spec.token_file:
            try:
                token = read_secret(self.spec.token_file, what="a token file", limit=16 * KIB, one_line=True)
            except FileRefused as exc:
                raise _Refused(Refusal.SETUP, f"source.token_file: {exc}") from None
        for field, path in (("ssh_key_file", self.spec.ssh_key_file), ("known_hosts", self.spec.known_hosts)):
            if path:  # ssh reads it; a FIFO or a device would hang or flood it, so look first
                try:
                    os.close(open_regular(path))
                except FileRefused as exc:
                    raise _Refused(Refusal.SETUP, f"source.{field}: {exc}") from None
                except OSError as exc:
                    raise _Refused(Refusal.SETUP, f"source.{field}: cannot read {path}: {exc.strerror} (check "
                                   "the path and permissions)") from None
        return GitRunner(self.git, timeout=self.spec.timeout, token=token, token_user=self.spec.token_user,
                         ssh_key_file=self.spec.ssh_key_file, known_hosts=self.spec.known_hosts,
                         max_fetch_bytes=FETCH_FACTOR * self.spec.max_tree_bytes)

    def _prepare(self, runner: GitRunner) -> None:
        (self.root / "trees").mkdir(parents=True, exist_ok=True)
        for path in remove_leftovers(self.repo):  # held lock: a git killed earlier left these, none runs now
            log.warning("source: removed %s, left in %s by a git command that was stopped", path, self.repo)
        if not (self.repo / "HEAD").exists():
            res = runner.run("init", "-q", "--bare", str(self.repo))
            if not res.ok:
                raise _Refused(Refusal.SETUP, f"cannot create {self.repo}: {res.text()}")
        if self.spec.allowed_signers:
            error = copy_allowed_signers(self.spec.allowed_signers, self.root / "allowed_signers")
            if error:
                raise _Refused(Refusal.SETUP, error)

    def _resolve(self, runner: GitRunner, text: str) -> str:
        """The commit `text` names: one already fetched (a full id or an unambiguous prefix), else fetched."""
        if not _COMMIT_TEXT.fullmatch(text.lower()):
            raise _Refused(Refusal.REF_MISSING, f"{text[:80]!r} is not a commit id (give its hex id, at least 7 "
                           "characters, as `git log` shows it)")
        text = text.lower()
        rev = runner.run("rev-parse", "--verify", "--quiet", f"{text}^{{commit}}", cwd=self.repo)
        if rev.ok:
            return rev.stdout.strip()
        if len(text) not in (40, 64):
            raise _Refused(Refusal.REF_MISSING, f"commit {text!r} is not among the commits fetched from "
                           f"{self.spec.url}; give its full 40-character id to fetch it")
        try:
            return self._fetch(runner, text)
        except _Refused as exc:
            if exc.reason is not Refusal.REF_MISSING:
                raise
            raise _Refused(Refusal.REF_MISSING, f"commit {text} is not on {self.spec.url} (check the id: "
                           "`git log` in a clone shows it)") from None

    def _fetch(self, runner: GitRunner, ref: str | None = None) -> str:
        """The commit `ref` (default: the source's) names on the remote now, in the local repo; _Refused with
        the reason otherwise."""
        ref = ref or self.spec.ref
        url, limit = self.spec.url, runner.max_fetch_bytes or 0
        remote, listed = stopped.remote_commit(runner, self.repo, url, ref)  # ls-remote: no pack, a few bytes
        if listed is not None and listed.timed_out:
            raise self._fetch_error(listed, ref)  # the fetch would wait as long again
        if remote is not None and limit and stopped.is_stopped(self.root, url, ref, remote, limit):
            raise _Refused(Refusal.FETCH_FAILED, self._too_large(ref, remote, limit))  # not downloaded again
        if remote is not None and self._fetched(runner) == remote:
            return remote  # what the last fetch brought is what the ref names: no fetch (ls-remote replaced it)
        res = self._git_fetch(runner, f"+{ref}:{FETCHED}")
        if not res.ok and replace(self.spec, ref=ref).pinned and not res.timed_out and _missing_ref(res):
            # a server that refuses a want of an unadvertised commit: fetch its branches, then look
            res = self._git_fetch(runner, "+refs/heads/*:refs/xgen/heads/*", shallow=False)
            if res.ok:
                res = runner.run("update-ref", FETCHED, f"{ref}^{{commit}}", cwd=self.repo)
                if not res.ok:
                    raise _Refused(Refusal.REF_MISSING, f"source.ref: commit {ref} is not on any branch of "
                                   f"{self.spec.url}")
        if not res.ok and res.over_limit and remote is not None:
            try:
                stopped.remember(self.root, url, ref, remote, limit)
            except state.StateFileError as exc:
                log.warning("source: %s; the next poll downloads it again", exc)
            raise _Refused(Refusal.FETCH_FAILED, self._too_large(ref, remote, limit))
        if not res.ok:
            raise self._fetch_error(res, ref)
        rev = runner.run("rev-parse", "--verify", "--quiet", f"{FETCHED}^{{commit}}", cwd=self.repo)
        if not rev.ok:
            raise _Refused(Refusal.REF_MISSING, f"source.ref: {ref!r} on {self.spec.url} does not name a commit")
        return rev.stdout.strip()

    def _fetched(self, runner: GitRunner) -> str | None:
        """The commit the last fetch brought (FETCHED), None when there is none."""
        rev = runner.run("rev-parse", "--verify", "--quiet", f"{FETCHED}^{{commit}}", cwd=self.repo)
        return rev.stdout.strip() if rev.ok else None

    def _git_fetch(self, runner: GitRunner, refspec: str, shallow: bool = True) -> GitResult:
        depth = ["--depth=1"] if shallow else []
        return runner.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--force", *depth,
                          self.spec.url, refspec, cwd=self.repo)

    def _too_large(self, ref: str, commit: str, limit: int) -> str:
        """The refusal of a fetch stopped at the bound, the same when the next polls skip the fetch."""
        at, until = (f"{ref} at {commit[:12]}", f"; it is not downloaded again until {ref} moves") \
            if ref != commit else (commit[:12], "")
        return (f"cannot fetch {self.spec.url}: the fetch of {at} passed {limit / 1048576:g} MiB and was stopped "
                f"({FETCH_FACTOR} x source.max_tree_mib){until}; keep models and large files out of the config "
                "repository, or raise source.max_tree_mib; the last good commit stays current")

    def _fetch_error(self, res: GitResult, ref: str) -> _Refused:
        url = self.spec.url
        if res.over_limit:
            return _Refused(Refusal.FETCH_FAILED, f"cannot fetch {url}: {res.text()} ({FETCH_FACTOR} x "
                            "source.max_tree_mib); keep models and large files out of the config repository, or "
                            "raise source.max_tree_mib; the last good commit stays current")
        if res.timed_out:
            return _Refused(Refusal.TIMEOUT, f"cannot fetch {url}: {res.text()} (is the remote slow or huge? "
                            "source.timeout)")
        if _missing_ref(res):
            return _Refused(Refusal.REF_MISSING, f"source.ref: {ref!r} does not exist in {url} (check "
                            "the branch, tag or commit)")
        if "could not read Username" in res.stderr or "Authentication failed" in res.stderr:
            why = ("the server refused the token of source.token_file (or --token-file; HTTP 401: check the token "
                   "and its rights)" if self.spec.token_file else "the server asks for credentials (HTTP 401: set "
                   "source.token_file, or --token-file FILE with a git+URL)")
            return _Refused(Refusal.FETCH_FAILED, f"cannot fetch {url}: {why}; the last good commit stays current")
        return _Refused(Refusal.FETCH_FAILED, f"cannot fetch {url}: {res.text()}; the last good commit stays current")


def _missing_ref(res: GitResult) -> bool:
    err = res.stderr
    return "couldn't find remote ref" in err or "not our ref" in err or "no such remote ref" in err \
        or "unadvertised object" in err
