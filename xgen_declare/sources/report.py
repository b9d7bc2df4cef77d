"""What a git source looks like now, as one JSON object, read from its state dir without fetching: the
same answer for `source status -o json`, the source block of `status` and the API's
`GET /api/management/source`.

    {"source": {url, ref, path, verify, interval},
     "current": {commit, short, at},   the commit the source applied last (STATE/source/current) and when; null: none
     "serving": {commit, short, at},   the commit a daemon reads (STATE/source/serving); commit null: none
     "pin": {commit, at, before} | null,
     "last_poll": PollResult.to_json() | null,
     "last_gc": {at, ok, error, before: {objects, bytes} | null, after: ..., kept: [commit, ...]} | null,
                                       the last `git gc` of repo.git (sources/gc.py, STATE/source/last_gc)
     "problems": [text, ...]}          a damaged state file, named with what to do
"""

from __future__ import annotations

import os
from pathlib import Path

from xgen_declare.sources import gc, state, trees
from xgen_declare.sources.git import GitSource
from xgen_declare.sources.poller import last_recorded

__all__ = ["report"]


def report(source: GitSource) -> dict:
    spec, root = source.spec, source.root
    problems: list[str] = []
    pin = last = last_gc = None
    try:
        pin = source.pinned()
    except state.StateFileError as exc:
        problems.append(str(exc))
    try:
        last = last_recorded(source)
    except state.StateFileError as exc:
        problems.append(str(exc))
    try:
        last_gc = gc.last_recorded(root)
    except state.StateFileError as exc:
        problems.append(str(exc))
    return {"source": {"url": spec.url, "ref": spec.ref, "path": spec.path, "verify": bool(spec.allowed_signers),
                       "interval": spec.interval},
            "current": _link(root, "current", trees.current_commit(root)),
            "serving": _link(root, trees.SERVING, trees.serving_commit(root)),
            "pin": pin, "last_poll": last, "last_gc": last_gc,
            "problems": problems}


def _link(root: Path, name: str, commit: str | None) -> dict:
    if commit is None:
        return {"commit": None, "short": None, "at": None}
    try:
        at = os.lstat(root / name).st_mtime  # the rename that made it point there
    except OSError:
        at = None
    return {"commit": commit, "short": commit[:12], "at": at}
