"""What the store already holds, read from huggingface_hub's cache layout without network:
DIR/models--ORG--REPO/refs/REVISION holds a commit; snapshots/COMMIT/FILE links to blobs/ETAG."""

from __future__ import annotations

import os
import re
from pathlib import Path

from xgen_declare.names import is_commit_id
from xgen_declare.errors import FileRefused
from xgen_declare.readers.bounded import read_text
from xgen_declare.store.remote import RemoteFile

__all__ = ["read_ref", "write_ref", "local_listing"]

_ETAG_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def read_ref(repo_dir: Path, revision: str) -> str | None:
    """The commit `revision` names in the store: itself when it is a commit the store has, else what
    refs/REVISION says (written by huggingface_hub when it resolved the revision online); None if unknown."""
    if is_commit_id(revision):
        return revision if (repo_dir / "snapshots" / revision).is_dir() else None
    if ".." in revision.split("/"):
        return None
    try:
        text = read_text(repo_dir / "refs" / revision, 256, what="a store ref").strip()
    except (OSError, FileRefused, UnicodeDecodeError):
        return None
    return text if is_commit_id(text) and (repo_dir / "snapshots" / text).is_dir() else None


def write_ref(repo_dir: Path, revision: str, commit: str) -> None:
    """Record that `revision` resolved to `commit` (refs/REVISION, as huggingface_hub writes it), so that
    offline use finds it; nothing for a revision that is a commit."""
    if is_commit_id(revision) or ".." in revision.split("/"):
        return
    ref = repo_dir / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)


def local_listing(snapshot: Path) -> dict[str, RemoteFile]:
    """The files of one snapshot directory (path -> RemoteFile with the size of the blob it links to)."""
    out: dict[str, RemoteFile] = {}
    for root, _dirs, names in os.walk(snapshot):
        for name in names:
            link = Path(root) / name
            try:
                size = link.stat().st_size  # follows the link to its blob; a dangling one is not there
            except OSError:
                continue
            etag = os.path.basename(os.readlink(link)) if link.is_symlink() else None
            sha = etag if etag and _ETAG_SHA256.match(etag) else None
            rel = str(link.relative_to(snapshot))
            out[rel] = RemoteFile(rel, size, sha, None if sha else etag)
    return out
