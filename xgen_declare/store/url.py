"""A URL source (`{url: https://HOST/PATH/x.gguf, sha256: HEX}`) fetched into the store: one HEAD for the
size (the disk preflight comes before any byte), then the GET of store/stream.py (huggingface_hub's
`http_get` in 1 MiB pieces: its retries, Range on a dropped connection) into one stable partial file, so a
later fetch, after a crash or `kill -9`, resumes with a Range request; the file becomes a blob only when its
sha256 matches the manifest's. The download holds `STORE/.locks/xgen-urls/SHA256.lock` (huggingface_hub's
filelock, as store/download.py takes a blob's): one writer at a time, and `store gc` sees it running.

Layout, beside huggingface_hub's `models--ORG--REPO` directories:
    STORE/xgen-urls/blobs/SHA256                 the file (SHA256.incomplete while it is fetched)
    STORE/xgen-urls/snapshots/SHA256/NAME.gguf   -> ../../blobs/SHA256, the path a backend is given
A blob is named by its content, so two manifests naming one file (one sha256) fetch it once.

A token (`token_file`) is sent as `Authorization: Bearer` to the URL's own origin only, never to a host a
redirect leads to; it is never logged.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.parse import unquote, urlsplit

from xgen_declare.config import Store
from xgen_declare.errors import FetchError
from xgen_declare.manifests.source import Source
from xgen_declare.store.bar import Bar, ProgressFn
from xgen_declare.store.download import HashingFile, is_stored, open_partial
from xgen_declare.store.fetched import Fetched
from xgen_declare.store.preflight import check_space, store_writable
from xgen_declare.store.remote import RemoteFile
from xgen_declare.store.stream import get_into

__all__ = ["fetch_url", "url_bytes_needed", "URLS_DIR", "url_file_name"]

URLS_DIR = "xgen-urls"
HEAD_TIMEOUT = 30.0


def url_file_name(url: str) -> str:
    """The file name a URL source is stored under (the last segment of its path: `x.gguf`)."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return name if name and name not in (".", "..") and "/" not in name else "model.gguf"


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return p.scheme, (p.hostname or "").lower(), p.port


def _refused(source: Source, status: int) -> FetchError:
    what = source.text
    if status in (401, 403):
        return FetchError(f"{what}: the server refused access (HTTP {status}); check the source's token_file",
                          blocked=True)
    if status in (404, 410):
        return FetchError(f"{what}: the server has no such file (HTTP {status}); check the URL", blocked=True)
    if status >= 500 or status in (408, 429):
        return FetchError(f"{what}: the server answered HTTP {status} (a server error: worth retrying; xgen-declare pull resumes)",
                          blocked=False)
    return FetchError(f"{what}: the server answered HTTP {status}; check the URL", blocked=True)


def _head(source: Source, headers: dict, timeout: float = HEAD_TIMEOUT) -> tuple[str, int | None]:
    """(the URL the file is fetched from after redirects, its size or None)."""
    import httpx
    try:
        with httpx.Client(follow_redirects=True, timeout=timeout) as client:
            r = client.head(str(source.url), headers=headers)
    except httpx.HTTPError as exc:
        raise FetchError(f"fetching {source.text}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                         " (a network or server error: worth retrying; xgen-declare pull resumes)", blocked=False) from None
    if r.status_code in (405, 501):  # no HEAD here: the size comes with the GET
        return str(source.url), None
    if r.status_code >= 400:
        raise _refused(source, r.status_code)
    length = r.headers.get("content-length")
    return str(r.url), int(length) if length and length.isdigit() else None


def _snapshot_link(root: Path, sha: str, name: str) -> Path:
    link = root / "snapshots" / sha / name
    if not os.path.lexists(link):
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(root / "blobs" / sha, link.parent), link)
    return link


def url_bytes_needed(source: Source, store_dir: Path, token: str | None) -> dict[str, int]:
    """{blob path: bytes still to fetch} for a URL source: empty when its blob is there, else its size (HEAD)
    less a partial file."""
    root = store_dir / URLS_DIR / "blobs"
    sha = str(source.sha256)
    if is_stored(root / sha):
        return {}
    _, size = _head(source, {"authorization": f"Bearer {token}"} if token else {})
    partial = root / f"{sha}.incomplete"
    have = partial.stat().st_size if is_stored(partial) else 0
    return {str(root / sha): max(0, (size or 0) - have)}


def fetch_url(source: Source, store: Store, store_dir: Path, *, token: str | None, offline: bool,
              progress: ProgressFn | None, disk_usage: Callable[[str], tuple]) -> Fetched:
    """The URL source's file in the store, fetched if missing."""
    sha, name = str(source.sha256), url_file_name(str(source.url))
    root = store_dir / URLS_DIR
    blob, partial = root / "blobs" / sha, root / "blobs" / f"{sha}.incomplete"

    def done(size: int, fetched: int, reused: bool) -> Fetched:
        f = RemoteFile(name, size, sha)
        link = _snapshot_link(root, sha, name)
        return Fetched(str(source.url), sha, (f,), (link,), link.parent, fetched, (name,) if reused else ())

    if is_stored(blob):
        size = blob.stat().st_size
        if progress:
            progress(size, size)
        return done(size, 0, True)
    if offline:
        raise FetchError(f"offline: {source.text} (sha256 {sha[:16]}) is not in the store {store_dir}; fetch it once "
                         "online (xgen-declare pull), or turn store.offline / HF_HUB_OFFLINE off", blocked=True)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    location, size = _head(source, headers)
    if _origin(location) != _origin(str(source.url)):
        headers.pop("authorization", None)  # the token stays with the host the manifest names
    from huggingface_hub.utils import WeakFileLock
    store_writable(store_dir)
    lock = store_dir / ".locks" / URLS_DIR / f"{sha}.lock"  # one writer of the partial; `store gc` tries it
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(str(lock)):
        if is_stored(blob):  # another process fetched it meanwhile
            size = blob.stat().st_size
            if progress:
                progress(size, size)
            return done(size, 0, True)
        return _fetch_locked(source, store, store_dir, sha, blob, partial, location, size, headers, progress,
                             disk_usage, done)


def _fetch_locked(source: Source, store: Store, store_dir: Path, sha: str, blob: Path, partial: Path, location: str,
                  size: int | None, headers: dict, progress: ProgressFn | None, disk_usage: Callable[[str], tuple],
                  done: Callable[[int, int, bool], Fetched]) -> Fetched:
    resume = partial.stat().st_size if is_stored(partial) else 0
    if size is not None and resume > size:
        partial.unlink()
        resume = 0
    check_space((size or 0) - resume, store_dir, store, disk_usage)
    blob.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(0, size or 0)
    out = _download(source, store_dir, partial, location, headers, resume, size, progress)
    got = out.sums()
    got_sha = got[False] if got else _sha256_of(partial)
    if got_sha != sha:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{source.text}: checksum mismatch (sha256 {got_sha[:16]}, the manifest gives {sha[:16]}); "
                         "the downloaded file was deleted. Check the source's sha256, or retry (xgen-declare pull) "
                         "if the network corrupted it", blocked=True)
    os.chmod(partial, stat.S_IMODE(os.stat(blob.parent).st_mode) & 0o666)
    os.replace(partial, blob)
    total = blob.stat().st_size
    return done(total, total - resume, False)


def _download(source: Source, store_dir: Path, partial: Path, location: str, headers: dict, resume: int,
              size: int | None, progress: ProgressFn | None) -> HashingFile:
    from huggingface_hub.errors import HfHubHTTPError
    try:
        with open_partial(partial) as fh:
            out = HashingFile(fh, partial, resume, size, sha256=True, git=False)
            try:
                get_into(location, out, resume=resume, headers=headers, expected_size=size,
                         bar=Bar.for_file(progress, 0, size or 0))
            finally:
                out.close_hasher()
    except FetchError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise FetchError(f"the disk of the store {store_dir} filled while fetching {source.text} "
                             f"({partial.stat().st_size} bytes kept for resume): free space (xgen-declare store gc) "
                             "and fetch again", blocked=True) from None
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise FetchError(f"cannot write the store {store_dir}: {exc.strerror}; make it writable or set store.dir",
                             blocked=True) from None
        raise _network(source, exc) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None) or 0
        raise _refused(source, status) from None
    except Exception as exc:  # noqa: BLE001 - httpx and huggingface_hub's own: a network error, retryable
        raise _network(source, exc) from None
    return out  # with no size known its sums are None: the file is hashed from disk


def _network(source: Source, exc: Exception) -> FetchError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return FetchError(f"fetching {source.text}: {type(exc).__name__}: {first} (a network or server error: worth "
                      "retrying; xgen-declare pull resumes)", blocked=False)


def _sha256_of(path: Path) -> str:
    import hashlib

    from xgen_declare.readers.bounded import opened
    h = hashlib.sha256()
    with opened(path, follow=False) as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
