"""Fetch a hub `Source` into the store: resolve its revision to a commit, list the files it needs with their
sizes (model info, before any byte is fetched), check the disk, download through `huggingface_hub` (its
cache layout: DIR/models--ORG--REPO/{blobs,snapshots/COMMIT,refs}, so an existing HuggingFace cache is
reused and a file is fetched once however many models use it), verify each new file against the hub's
checksum, and report progress (bytes done / total) through a callback.

Errors are `FetchError`: `blocked` (access refused, no such revision or file, not enough disk, a checksum
mismatch: retrying cannot help) or retryable (network). The daemon runs it in worker threads
(reconciler/fetching.py).
What huggingface_hub 2.x does not do, and this module therefore does: check sha256 (it checks sizes only).
Nor does it resume across processes (it deletes its partial file on failure): store/download.py keeps one
partial file per blob, so a fetch after a crash or `kill -9` resumes with Range.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable, Mapping

from xgen_declare.config import Config, Store
from xgen_declare.errors import FetchError
from xgen_declare.manifests.source import Source
from xgen_declare.store.fetched import Fetched
from xgen_declare.store.download import blob_path, download_blob, is_stored, link_snapshot, partial_path, repo_dir
from xgen_declare.store.bar import Bar as _Bar, ProgressFn
from xgen_declare.store.local import local_listing, read_ref, write_ref
from xgen_declare.store.preflight import check_space, store_writable
from xgen_declare.store.remote import RemoteFile, pick_files

__all__ = ["fetch", "Fetched", "default_store_dir", "store_dir_of", "ProgressFn", "is_offline", "offline_why",
           "bytes_needed"]

def default_store_dir(env: Mapping[str, str] | None = None) -> Path:
    """The HuggingFace cache a process with `env` (default: this one's) would use: HF_HUB_CACHE, else
    HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub or ~/.cache/huggingface/hub."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def store_dir_of(config: Config, env: Mapping[str, str] | None = None) -> Path:
    """`store.dir` (relative to the config file), or the HuggingFace cache."""
    return Path(config.resolve(config.store.dir) or "") if config.store.dir else default_store_dir(env)


def is_offline(store: Store) -> bool:
    return offline_why(store) is not None


def offline_why(store: Store) -> str | None:
    """What makes the store offline ("store.offline", "HF_HUB_OFFLINE"), or None when it is not."""
    if store.offline:
        return "store.offline"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE"
    return None


def fetch(source: Source, store: Store, store_dir: str | Path, *, endpoint: str | None = None,
          token: str | None = None, progress: ProgressFn | None = None,
          disk_usage: Callable[[str], tuple] = shutil.disk_usage,
          on_file: Callable[[str], None] | None = None,
          on_resume: Callable[[int], None] | None = None) -> Fetched:
    """The source's files in the store, fetched if missing. `on_resume(n)`: a file resumes with n bytes
    already in its partial file (they show in the progress, but are not fetched again). `token` is never logged nor put in argv;
    `disk_usage` is a seam for the preflight (a full disk in tests); `on_file(path)` is called before each
    file is downloaded. Any OSError of the store itself (a link, a ref, a directory it cannot write) is a
    FetchError naming the path."""
    try:
        return _fetch(source, store, Path(store_dir), endpoint, token, progress, disk_usage, on_file, on_resume)
    except OSError as exc:
        where = exc.filename or store_dir
        raise FetchError(f"the store cannot be written at {where}: {exc.strerror or exc}; fix its permissions "
                         "or free space, or set store.dir", blocked=True) from None


def _fetch(source: Source, store: Store, store_dir: Path, endpoint: str | None, token: str | None,
           progress: ProgressFn | None, disk_usage: Callable[[str], tuple],
           on_file: Callable[[str], None] | None, on_resume: Callable[[int], None] | None = None) -> Fetched:
    if source.kind == "url":
        from xgen_declare.store.url import fetch_url
        return fetch_url(source, store, store_dir, token=token, offline=is_offline(store), progress=progress,
                         disk_usage=disk_usage)
    if source.kind != "hf":
        raise FetchError(f"{source.text}: a local path is used where it is, not fetched", blocked=True)
    repo = str(source.repo)
    if is_offline(store):
        return _from_store(source, store_dir)
    commit, listing = _resolve(source, endpoint, token)
    files = pick_files(source, listing, commit)
    unnamed = [f.path for f in files if not (f.sha256 or f.blob_id)]
    if unnamed:  # the blob's name in the store is its checksum: without one nothing can be stored or checked
        raise FetchError(f"{endpoint or 'the hub'} lists no checksum for {unnamed[0]} of {repo}; check that "
                         "HF_ENDPOINT is a HuggingFace-compatible hub", blocked=True)
    present = [f for f in files if is_stored(blob_path(store_dir, repo, f))]
    missing = [f for f in files if f not in present]
    needed = sum((f.size or 0) - _partial_size(store_dir, repo, f) for f in missing)
    if missing:
        store_writable(store_dir)
        check_space(needed, store_dir, store, disk_usage)
    total = sum(f.size or 0 for f in files)
    done = sum(f.size or 0 for f in present)  # a partial file's bytes count once its download resumes
    if on_file and missing:
        on_file(missing[0].path)
    if progress:
        progress(done, total)
    fetched = 0
    for f in missing:
        bar = _Bar.for_file(progress, done, total, on_resume)
        if on_file:
            on_file(f.path)
        try:
            fetched += download_blob(store_dir, repo, commit, f, endpoint=endpoint, token=token, bar=bar,
                                     manifest_sha256=source.sha256)
        except FetchError:
            raise
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise FetchError(f"cannot write the store {store_dir}: {exc.strerror}; make it writable or set "
                                 "store.dir", blocked=True) from None
            raise _hub_error(exc, source, f.path) from None
        except Exception as exc:  # noqa: BLE001 - mapped to blocked / retryable by kind
            raise _hub_error(exc, source, f.path) from None
        done += f.size or 0
        if progress:
            progress(done, total)
    for f in present:  # a blob another revision fetched: link it into this commit's snapshot too
        link_snapshot(store_dir, repo, commit, f)
    snapshot = repo_dir(store_dir, repo) / "snapshots" / commit
    write_ref(repo_dir(store_dir, repo), source.revision or "main", commit)
    return Fetched(repo, commit, tuple(files), tuple(snapshot / f.path for f in files), snapshot, fetched,
                   tuple(f.path for f in present))


def bytes_needed(source: Source, store: Store, store_dir: str | Path, *, endpoint: str | None = None,
                 token: str | None = None) -> dict[str, int]:
    """Bytes a fetch of `source` would still write into the store, per blob path (so that sources sharing a
    file count it once; empty offline or when every file is there): sizes from the hub's metadata (a HEAD
    for a URL), no byte of a file. For a preflight across sources."""
    store_dir = Path(store_dir)
    if is_offline(store) or not source.is_remote:
        return {}
    if source.kind == "url":
        from xgen_declare.store.url import url_bytes_needed
        return url_bytes_needed(source, store_dir, token)
    repo = str(source.repo)
    commit, listing = _resolve(source, endpoint, token)
    files = pick_files(source, listing, commit)
    return {str(blob_path(store_dir, repo, f)): (f.size or 0) - _partial_size(store_dir, repo, f) for f in files
            if not is_stored(blob_path(store_dir, repo, f))}


def _partial_size(store_dir: Path, repo: str, f: RemoteFile) -> int:
    try:
        return min(partial_path(store_dir, repo, f).stat().st_size, f.size or 0)
    except OSError:
        return 0


def _resolve(source: Source, endpoint: str | None, token: str | None,
             timeout: float | None = None) -> tuple[str, dict[str, RemoteFile]]:
    """(the commit, path -> RemoteFile) of a hub source: its model info with the files' metadata (store/hubmeta.py
    reads it too, with a `timeout`)."""
    from huggingface_hub import HfApi
    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info = api.model_info(str(source.repo), revision=source.revision or "main", files_metadata=True,
                              timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - mapped to blocked / retryable by kind
        raise _hub_error(exc, source, None) from None
    listing = {}
    for s in info.siblings or []:
        lfs = s.lfs
        listing[s.rfilename] = RemoteFile(s.rfilename, lfs.size if lfs else s.size,
                                          lfs.sha256 if lfs else None, s.blob_id)
    if not info.sha:
        raise FetchError(f"{endpoint or 'the hub'} gave no commit for {source.text}; check HF_ENDPOINT", blocked=True)
    return info.sha, listing


def _hub_error(exc: Exception, source: Source, path: str | None) -> FetchError:
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, RemoteEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    what = f"{path} of {source.repo}" if path else str(source.repo)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, GatedRepoError):
        return FetchError(f"{source.repo} is gated (HTTP {status}): accept its terms on the hub and give a token "
                          "that has access", blocked=True)
    if isinstance(exc, RepositoryNotFoundError):
        return FetchError(f"{source.repo}: the hub has no such repository, or it is private (HTTP {status}); "
                          "check the name, or give a token with access", blocked=True)
    if isinstance(exc, RevisionNotFoundError):
        return FetchError(f"{source.repo} has no revision {source.revision!r}; check the branch, tag or commit",
                          blocked=True)
    if isinstance(exc, RemoteEntryNotFoundError):
        return FetchError(f"{what}: the hub has no such file at that revision; check the file name", blocked=True)
    if isinstance(exc, HfHubHTTPError) and status in (401, 403):
        return FetchError(f"{what}: the hub refused access (HTTP {status}); check the token", blocked=True)
    return FetchError(f"fetching {what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                      "(a network or server error: worth retrying; xgen-declare pull resumes)", blocked=False)


def _from_store(source: Source, store_dir: Path) -> Fetched:
    """Offline: the source as the store holds it, or FetchError(blocked) saying what is missing."""
    repo = str(source.repo)
    rev = source.revision or "main"
    commit = read_ref(repo_dir(store_dir, repo), rev)
    hint = "fetch it once online (xgen-declare pull), or turn store.offline / HF_HUB_OFFLINE off"
    if commit is None:
        raise FetchError(f"offline: {repo}@{rev} is not in the store {store_dir}; {hint}", blocked=True)
    snapshot = repo_dir(store_dir, repo) / "snapshots" / commit
    files = pick_files(source, local_listing(snapshot), commit)
    return Fetched(repo, commit, tuple(files), tuple(snapshot / f.path for f in files), snapshot, 0,
                   tuple(f.path for f in files))
