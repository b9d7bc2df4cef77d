"""What one sync of a git source did: `SyncResult`, with the cause of a refusal as a type (`Refusal`),
never a reason's text to search.

    Refusal            why the fetched commit is not current
      FETCH_FAILED     the remote answered an error or could not be reached
      TIMEOUT          a git command ran past source.timeout
      REF_MISSING      the ref names no branch, tag or commit on the remote
      UNSIGNED         the commit carries no signature (source.verify is set)
      BAD_SIGNATURE    signed, but not by an allowed key, or the signature is bad, expired or revoked
      NOT_FAST_FORWARD the commit does not descend from the current one (a force push to older history)
      TREE_INVALID     the tree is too large, source.path is missing or leads outside, a link leads out
      MANIFESTS_INVALID the commit's manifests fail validation (`problems` says file:line: field)
      SETUP            a file the source needs (token, key, allowed_signers, pin) or its state dir is unusable
      BUSY             another process holds the source's lock (a sync, pin or unpin) past the wait
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from xgen_declare.errors import Problem

__all__ = ["Refusal", "SyncResult"]


class Refusal(str, enum.Enum):
    FETCH_FAILED = "fetch_failed"
    TIMEOUT = "timeout"
    REF_MISSING = "ref_missing"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    NOT_FAST_FORWARD = "not_fast_forward"
    TREE_INVALID = "tree_invalid"
    MANIFESTS_INVALID = "manifests_invalid"
    SETUP = "setup"
    BUSY = "busy"

    @property
    def transient(self) -> bool:
        """The remote, not the commit: worth retrying with back-off."""
        return self in (Refusal.FETCH_FAILED, Refusal.TIMEOUT)


@dataclass(frozen=True)
class SyncResult:
    commit: str | None          # the commit `current` points at after this sync (the last good one)
    fetched: str | None         # the commit the ref resolved to this time (None: the fetch failed)
    changed: bool               # `current` moved to `fetched` in this sync
    error: str | None = None    # why `fetched` is not current, or why nothing was fetched
    manifests: Path | None = None  # the current commit's manifests directory (trees/<commit>/PATH)
    reason: Refusal | None = None  # the cause of `error`, as a type
    problems: tuple[Problem, ...] = ()  # MANIFESTS_INVALID: each problem, its file relative to the repo
    before: str | None = None   # the commit that was current when this sync began
    pinned: str | None = None   # the commit `source pin` holds current (the ref is fetched, not applied)
    signature: str | None = None  # the fetched commit's verified signer (`principal (SHA256:...)`), if checked

    @property
    def ok(self) -> bool:
        return self.error is None
