"""One file of a hub repository into the store's blobs/, resumable across processes.

`hf_hub_download` (huggingface_hub 2.x) downloads into a per-process `<etag>.<random>.incomplete` and
deletes it on any failure, so a daemon killed at 90 % of 40 GB starts again from zero. Here the same
machinery (`get_hf_file_metadata` for the HEAD and its redirect; store/stream.py, `http_get` in 1 MiB
pieces, for the GET with Range and retries) writes into one stable `blobs/<etag>.incomplete` under
huggingface_hub's own lock (`.locks/models--ORG--REPO/<etag>.lock`, so an HF client and the store never
write one blob at once): a
later call, in this process or another, resumes from its size. The file becomes `blobs/<etag>` only after
its checksum matched; `snapshots/COMMIT/FILE` links to it, as huggingface_hub lays it out, and the
store's ledger (store/ledger.py) notes it as fetched by xgen-declare (the partial file too, before a byte is
written: `store gc` removes a partial no manifest wants, store/partials.py, only when it is ours).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from xgen_declare.errors import FetchError
from xgen_declare.store import ledger
from xgen_declare.readers.bounded import kind_of, opened
from xgen_declare.store.remote import RemoteFile
from xgen_declare.store.stream import get_into

__all__ = ["download_blob", "link_snapshot", "repo_dir", "blob_path", "partial_path", "is_stored", "open_partial",
           "HashingFile", "verify"]


def repo_dir(store_dir: Path, repo: str) -> Path:
    return store_dir / ("models--" + repo.replace("/", "--"))


def blob_path(store_dir: Path, repo: str, f: RemoteFile) -> Path:
    return repo_dir(store_dir, repo) / "blobs" / str(f.sha256 or f.blob_id)


def partial_path(store_dir: Path, repo: str, f: RemoteFile) -> Path:
    return blob_path(store_dir, repo, f).with_name(f"{f.sha256 or f.blob_id}.incomplete")


def is_stored(path: Path) -> bool:
    """True when `path` is a regular file (a blob or a partial file the store wrote), False when it is not
    there; FetchError(blocked) for anything else planted there (a FIFO, a device, a link, a directory):
    reading or appending to it could block or write elsewhere."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # not there, nor is the directory it would be in
        return False
    if stat.S_ISREG(mode):
        return True
    raise FetchError(f"{path} is {kind_of(mode)}, not a regular file: the store did not write it; remove it and "
                     "fetch again", blocked=True)


def open_partial(path: Path):
    """The partial file opened for appending, created if missing: never a FIFO (O_NONBLOCK: no wait for a
    reader) nor a link (O_NOFOLLOW); FetchError(blocked) when something else is there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            is_stored(path)  # says what is there
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        is_stored(path)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, "ab")


def link_snapshot(store_dir: Path, repo: str, commit: str, f: RemoteFile) -> Path:
    """snapshots/COMMIT/FILE -> ../../blobs/ETAG (relative, as huggingface_hub links it)."""
    link = repo_dir(store_dir, repo) / "snapshots" / commit / f.path
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():  # dangling: its blob was deleted
            link.unlink()
        os.symlink(os.path.relpath(blob_path(store_dir, repo, f), link.parent), link)
    return link


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return p.scheme, (p.hostname or "").lower(), p.port


class _HashingFile:
    """The partial file as http_get writes it, hashed on the way (sha256 and the git blob sha1), so a
    40 GB file is not read a second time to be checked. The prefix a resume starts from is hashed first;
    if http_get rewinds (a server that ignored Range and sent the whole file) the sums are dropped and
    the file is hashed from disk at the end."""

    def __init__(self, fh, prefix_path: Path, prefix: int, size: int | None, *, sha256: bool, git: bool) -> None:
        self.fh, self.size, self.valid = fh, size, size is not None
        self.sha256 = hashlib.sha256() if sha256 else None  # only the sums a check needs: each costs CPU
        self.sha1 = hashlib.sha1(b"blob %d\0" % size) if git and size is not None else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-hash")
        self._pending: Future | None = None
        if prefix:
            with opened(prefix_path, follow=False) as old:
                left = prefix
                while left and (chunk := old.read(min(1 << 20, left))):
                    self._update(chunk)
                    left -= len(chunk)

    def _update(self, chunk: bytes) -> None:
        if self.sha256 is not None:
            self.sha256.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)

    def write(self, chunk: bytes) -> int:
        # hashed on a worker thread (hashlib releases the GIL) while the next chunk arrives; one at a time
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._update, chunk)
        return self.fh.write(chunk)

    def close_hasher(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        self._pool.shutdown(wait=True)

    def seek(self, *args):
        self.valid = False
        return self.fh.seek(*args)

    def truncate(self, *args):
        self.valid = False
        return self.fh.truncate(*args)

    def __getattr__(self, name: str):
        return getattr(self.fh, name)

    def sums(self) -> dict[bool, str] | None:
        """{git: hexdigest} of the sums kept, when every byte went through here; else None."""
        self.close_hasher()
        if not self.valid:
            return None
        out = {}
        if self.sha256 is not None:
            out[False] = self.sha256.hexdigest()
        if self.sha1 is not None:
            out[True] = self.sha1.hexdigest()
        return out


HashingFile = _HashingFile  # store/url.py writes through it too


def _hash(path: Path, git: bool) -> str:
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size) if git else hashlib.sha256()
    with opened(path, follow=False) as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, f: RemoteFile, repo: str, commit: str, manifest_sha256: str | None,
           sums: dict[bool, str] | None = None) -> None:
    """`path` against the hub's checksum (sha256 for LFS files, the git blob id otherwise) and the
    manifest's own sha256; on a mismatch the file is deleted and FetchError(blocked) says why. `sums`:
    the digests computed while writing it ({git: hex}), else it is read again."""
    checks = [(f.sha256 or f.blob_id, f.sha256 is None, "the hub lists")]
    if manifest_sha256:
        checks.append((manifest_sha256, False, "the manifest gives"))
    for want, git, who in checks:
        if want is None:
            continue
        got = sums[git] if sums is not None and git in sums else _hash(path, git)
        if got != want:
            path.unlink(missing_ok=True)
            algo = "git sha1" if git else "sha256"
            raise FetchError(f"{f.path} of {repo}@{commit[:12]}: checksum mismatch ({algo} {got[:16]}, {who} "
                             f"{want[:16]}); the downloaded file was deleted. Check the source's sha256, or "
                             "retry (xgen-declare pull) if the network corrupted it", blocked=True)


def download_blob(store_dir: Path, repo: str, commit: str, f: RemoteFile, *, endpoint: str | None,
                  token: str | None, bar: type, manifest_sha256: str | None = None) -> int:
    """Fetch `f` into blobs/ (resuming a partial one) and link it into the commit's snapshot; returns the
    bytes downloaded by this call. Hub errors propagate as huggingface_hub raises them (fetch.py maps them);
    a full disk keeps the partial file for a later resume."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    url = hf_hub_url(repo, f.path, revision=commit, endpoint=endpoint)
    meta = get_hf_file_metadata(url, token=token or False, endpoint=endpoint)
    blob, partial = blob_path(store_dir, repo, f), partial_path(store_dir, repo, f)
    lock = store_dir / ".locks" / repo_dir(store_dir, repo).name / f"{blob.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    blob.parent.mkdir(parents=True, exist_ok=True)
    headers = build_hf_headers(token=token or False)
    if _origin(meta.location) != _origin(url):  # a CDN: the token stays on the hub, as huggingface_hub does
        headers.pop("authorization", None)
    with WeakFileLock(str(lock)):
        if is_stored(blob):
            link_snapshot(store_dir, repo, commit, f)
            return 0
        resume = partial.stat().st_size if is_stored(partial) else 0
        if f.size is not None and resume > f.size:  # not a prefix of this file: start over
            partial.unlink()
            resume = 0
        ledger.record(store_dir, partial, partial=True)  # a partial we write is ours: `store gc` may remove it once unwanted
        try:
            with open_partial(partial) as fh:
                out = _HashingFile(fh, partial, resume, f.size, sha256=bool(f.sha256 or manifest_sha256),
                                   git=f.sha256 is None)
                try:
                    get_into(meta.location, out, resume=resume, headers=headers, expected_size=f.size, bar=bar)
                finally:
                    out.close_hasher()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise FetchError(f"the disk of the store {store_dir} filled while fetching {f.path} of {repo} "
                                 f"({partial.stat().st_size} bytes kept for resume): free space (xgen-declare "
                                 "store gc) and fetch again", blocked=True) from None
            raise
        verify(partial, f, repo, commit, manifest_sha256, out.sums())
        os.chmod(partial, stat.S_IMODE(os.stat(blob.parent).st_mode) & 0o666)
        os.replace(partial, blob)
        ledger.record(store_dir, blob)  # ours: `store gc` may remove it (not what other tools fetched)
    link_snapshot(store_dir, repo, commit, f)
    return (f.size or 0) - resume
