"""The fetch owner: a model whose `spec.source` is not complete in the store is fetched here, in worker
threads (never on the control loop), one fetch per distinct source however many models name it (sources
that share a repository or URL are fetched one after the other, so a file they share is fetched once),
with its progress (bytes done / total, rate) kept for readers.

The control loop asks `want(source, token)` each pass: the source's `Download` (started if new). A source
pinned to a commit (by the manifest, or by a pin below; a URL by its sha256) that the store holds is found
without network, so a restarted daemon adopts its running models without waiting on the hub; a branch not
pinned yet is resolved online (a look that starts nothing, `network=False`, takes the store's ref). A failure that
retrying cannot fix (access refused, no such revision or file, a checksum mismatch, a full disk) is
`blocked` with the FetchError's reason and tried again only after BLOCKED_RETRY seconds (or a new token);
a network error retries with back-off (RETRY_BASE doubling to RETRY_MAX).

Cancelling: `cancel_unwanted(sources)` (the daemon, after each pass) stops every fetch no model wants any
more (its manifest removed, its source changed, or no longer for this host): the worker notices a flag
between two pieces of the download (store/stream.py reads 1 MiB at a time), while it waits for the
repository's lock or for a retry, and its connection is closed. Its partial file stays in the store
(`blobs/ETAG.incomplete`: a later fetch of the same file resumes from it). A fetch is kept while another
wanted source of the same repository may need the file it is fetching (the same file or quantisation, or
the whole repository), so two models sharing one file never lose it.

Pinning: a branch or tag is resolved to a commit once; the commit is written to STATE_DIR/pins/KEY.json
and every later fetch of the same source (as written) uses it, so a `main` that moves is not followed
until the manifest's source changes or `xgen-declare pull --update NAME` removes the pin.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from xgen_declare.names import is_commit_id
from xgen_declare.config import Store
from xgen_declare.errors import FetchError, FileRefused
from xgen_declare.manifests.source import Source
from xgen_declare.processes.statefiles import atomic_write, make_private_dir, read_state_json
from xgen_declare.store.fetch import fetch, offline_why
from xgen_declare.store.fetched import Fetched
from xgen_declare.store.remote import quant_matches
from xgen_declare.store.wanted import source_key

__all__ = ["Download", "Fetcher", "pin_path", "read_pin", "write_pin", "token_digest", "RETRY_BASE", "RETRY_MAX",
           "BLOCKED_RETRY", "LOCK_POLL"]

log = logging.getLogger("xgen_declare.reconciler.fetching")

RETRY_BASE = 2.0
RETRY_MAX = 60.0
BLOCKED_RETRY = 300.0
LOCK_POLL = 0.2  # how often a fetch waiting for its repository's lock looks at its cancel flag

FETCHING, RETRYING, BLOCKED, DONE = "fetching", "retrying", "blocked", "done"


@dataclass(frozen=True)
class Download:
    """One source's fetch as readers see it (replaced whole, never mutated)."""

    source: str                      # as written
    phase: str                       # fetching | retrying | blocked | done
    done: int = 0                    # bytes of the source in the store (files complete + this fetch's)
    total: int = 0                   # bytes of all its files (0: not known yet)
    rate: float = 0.0                # bytes/s of this attempt
    error: str | None = None         # blocked: the FetchError's reason; retrying: the last network error
    path: str | None = None          # done: what a backend is started on (the GGUF file, the snapshot dir)
    commit: str | None = None        # done: the commit (a URL source: its sha256)
    downloaded: int = 0              # bytes this daemon downloaded for it (a resumed file counts again)
    retry_in: float | None = None    # retrying: seconds until the next attempt (when it was recorded)

    def text(self) -> str:
        """The reason a waiting model shows: "fetching hf://org/m-GGUF:Q4_K_M: 1.2/4.8 GiB (52.0 MiB/s, ETA 1m13s)"."""
        if self.phase == BLOCKED:
            return self.error or f"fetching {self.source} failed"
        if self.phase == RETRYING:
            wait = f" in {self.retry_in:.0f}s" if self.retry_in is not None else ""
            return f"fetching {self.source}: retrying{wait} after: {self.error}"
        if not self.total:
            return f"fetching {self.source}: {self.error or 'asking the hub for its files'}"
        unit, div = ("GiB", 2**30) if self.total >= 2**30 else ("MiB", 2**20)
        text = f"fetching {self.source}: {self.done / div:.1f}/{self.total / div:.1f} {unit}"
        if self.rate > 0 and self.done < self.total:
            eta = (self.total - self.done) / self.rate
            text += f" ({self.rate / 2**20:.1f} MiB/s, ETA {_duration(eta)})"
        return text

    def progress(self) -> dict:
        """`status -o json`'s `download`: bytes done, total, rate (bytes/s)."""
        return {"done": self.done, "total": self.total, "rate": round(self.rate)}


def not_in_store_offline(source: Source, why: str) -> str:
    """The reason a source the store lacks is Blocked offline (`plan`'s line, as the daemon's fetch says it)."""
    return (f"offline ({why}): {source.text} is not in the store; it stays Blocked until it is fetched "
            "(xgen-declare pull without offline)")


def in_store_offline(name: str, source: Source, d: Download, why: str) -> str:
    """`plan`'s note for a source the store holds, offline."""
    at = f"{'sha256' if source.kind == 'url' else 'commit'} {(d.commit or '?')[:12]}"
    return f"store: offline ({why}): {name} uses what the store holds ({d.source} at {at})"


class _Cancelled(FetchError):
    """Raised inside a worker (from the progress callback, between two chunks) when no model wants its source
    any more; a FetchError so that the store's own handlers pass it on untouched."""

    def __init__(self, text: str) -> None:
        super().__init__(f"fetching {text}: cancelled (no model wants it now)", blocked=False)


def pin_path(pins: Path, source: Source) -> Path:
    return pins / (hashlib.sha256(source_key(source).encode()).hexdigest()[:24] + ".json")


class Fetcher:
    """`on_change(key)` is called (from a worker thread) when a fetch ends, fails or retries; progress is
    read with `get`. `disk_usage` is the preflight's seam."""

    def __init__(self, store: Store, store_dir: Path, pins: Path | None, *, endpoint: str | None = None,
                 on_change: Callable[[str], None] | None = None,
                 disk_usage: Callable[[str], tuple] = shutil.disk_usage,
                 clock: Callable[[], float] = time.monotonic, network: bool = True) -> None:
        self.network = network  # False: look in the store only, start nothing (`plan`, `render`)
        self.store, self.store_dir, self.pins = store, Path(store_dir), pins
        self.endpoint, self.on_change, self.disk_usage, self.clock = endpoint, on_change, disk_usage, clock
        self._lock = threading.Lock()
        self._downloads: dict[str, Download] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._blocked_at: dict[str, tuple[float, str | None]] = {}  # key -> (when, token digest)
        self._repo_locks: dict[str, threading.Lock] = {}
        self._closing = threading.Event()
        self.metadata = None  # reconciler/hubfacts.HubMetadata: placement before the fetch (downloads.store_fetcher)
        self._cancels: dict[str, threading.Event] = {}  # key -> set when no model wants it (or closing)
        self._sources: dict[str, Source] = {}           # key -> the source its running fetch fetches
        self._current: dict[str, str] = {}              # key -> the file (repo path) it is downloading now

    # ---- the control loop ------------------------------------------------------------------------
    def want(self, source: Source, token: str | None = None) -> Download:
        """The source's fetch; started when none runs and it is not done (or blocked recently)."""
        key = source_key(source)
        if not self.network:
            got = self._in_store(self._pinned(source))
            if got is not None:
                return Download(source.text, DONE, path=str(got.local_path), commit=got.commit)
            why = offline_why(self.store)
            if why is not None:  # offline the daemon takes what the store's ref names, or is Blocked
                got = self._in_store(self._pinned(source), any_ref=True)
                if got is not None:
                    return Download(source.text, DONE, path=str(got.local_path), commit=got.commit)
                return Download(source.text, BLOCKED, error=not_in_store_offline(source, why))
            return Download(source.text, FETCHING, error="not in the store yet")
        pinned = self._pinned(source)
        if key not in self._downloads and pinned.pinned:  # in the store at its commit (a restarted daemon)
            got = self._in_store(pinned)
            if got is not None:
                total = sum(f.size or 0 for f in got.files)
                with self._lock:
                    d = self._downloads[key] = Download(source.text, DONE, done=total, total=total,
                                                        path=str(got.local_path), commit=got.commit)
                return d
        with self._lock:
            d = self._downloads.get(key)
            running = key in self._threads and self._threads[key].is_alive()
            if d is not None and (running or (d.phase == DONE and not self._pin_moved(source, d))):
                return d  # a fetch being cancelled ends first (it wakes a pass), then starts again from its partial
            if d is not None and d.phase == BLOCKED:
                when, digest = self._blocked_at.get(key, (0.0, None))
                if self.clock() - when < BLOCKED_RETRY and digest == token_digest(token):
                    return d
            again = d is not None and d.phase != DONE  # a retry shows what it had; a new commit starts at 0
            d = Download(source.text, FETCHING, done=d.done if again else 0, total=d.total if again else 0,
                         downloaded=d.downloaded if d else 0)
            self._downloads[key] = d
            if self._closing.is_set():
                return d
            cancel = self._cancels[key] = threading.Event()
            self._sources[key] = source
            self._current.pop(key, None)
            t = threading.Thread(target=self._run, args=(key, source, token, cancel), daemon=True,
                                 name=f"fetch {source.text[:40]}")
            self._threads[key] = t
        t.start()
        return d

    def stored(self, source: Source) -> Fetched | None:
        """The source as the store holds it now, without network: at its pin, else at the commit the store's
        ref names (a whole repository only when pinned); what placement reads while a fetch resolves it."""
        return self._in_store(self._pinned(source))

    def get(self, source: Source) -> Download | None:
        return self._downloads.get(source_key(source))

    def busy(self) -> bool:
        with self._lock:
            return any(t.is_alive() for t in self._threads.values())

    def close(self, timeout: float = 5.0) -> None:
        """Stop retrying and stop each download at its next chunk (its partial file is resumed later)."""
        self._closing.set()
        with self._lock:
            for ev in self._cancels.values():
                ev.set()
        for t in list(self._threads.values()):
            t.join(timeout=timeout)

    def cancel_unwanted(self, wanted: Iterable[Source]) -> list[str]:
        """Cancel each running fetch whose source is not among `wanted` (every source a model of this pass
        names) and whose current file no wanted source of the same repository may need; the sources
        cancelled, as written. The workers stop at their next chunk and keep their partial files."""
        by_key = {source_key(s): s for s in wanted}
        out = []
        with self._lock:
            for key, t in self._threads.items():
                cancel = self._cancels.get(key)
                if key in by_key or not t.is_alive() or cancel is None or cancel.is_set():
                    continue
                src, current = self._sources[key], self._current.get(key)
                if any(_may_need(w, src, current) for w in by_key.values()):
                    continue
                cancel.set()
                out.append(src.text)
        for text in out:
            log.info("cancelling the fetch of %s: no model wants it now (its partial file is kept for resume)", text)
        return out

    # ---- the worker --------------------------------------------------------------------------------
    def _set(self, key: str, **changes) -> Download:
        with self._lock:
            d = self._downloads[key] = replace(self._downloads[key], **changes)
        return d

    def _run(self, key: str, source: Source, token: str | None, cancel: threading.Event) -> None:
        try:
            self._attempts(key, source, token, cancel)
        except _Cancelled:
            with self._lock:
                if self._threads.get(key) is threading.current_thread():
                    for table in (self._threads, self._downloads, self._cancels, self._sources, self._current):
                        table.pop(key, None)
            if not self._closing.is_set():
                log.info("fetch of %s cancelled; its partial file stays in the store", source.text)
                self._changed(key)

    def _attempts(self, key: str, source: Source, token: str | None, cancel: threading.Event) -> None:
        attempt = 0
        while not self._closing.is_set():
            if cancel.is_set():
                raise _Cancelled(source.text)
            try:
                got = self._fetch_once(key, source, token, cancel)
            except _Cancelled:
                raise
            except FetchError as exc:
                if exc.blocked:
                    with self._lock:
                        self._blocked_at[key] = (self.clock(), token_digest(token))
                    self._set(key, phase=BLOCKED, error=exc.reason, rate=0.0)
                    log.warning("fetch of %s failed: %s", source.text, exc.reason)
                    self._changed(key)
                    return
                attempt += 1
                delay = min(RETRY_BASE * 2 ** (attempt - 1), RETRY_MAX)
                self._set(key, phase=RETRYING, error=exc.reason, rate=0.0, retry_in=delay)
                log.warning("fetch of %s failed (retrying in %.0fs): %s", source.text, delay, exc.reason)
                self._changed(key)
                if cancel.wait(delay):  # cancelled, or closing
                    raise _Cancelled(source.text)
                self._set(key, phase=FETCHING, retry_in=None)
                continue
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill the loop's view of the fetch
                log.exception("fetch of %s failed", source.text)
                self._set(key, phase=BLOCKED, error=f"fetching {source.text}: {type(exc).__name__}: {exc}")
                self._changed(key)
                return
            self._pin(source, got)
            total = sum(f.size or 0 for f in got.files)
            self._set(key, phase=DONE, path=str(got.local_path), commit=got.commit, done=total, total=total,
                      error=None, retry_in=None)
            log.info("fetched %s: commit %s -> %s", source.text, got.commit[:12], got.local_path)
            self._changed(key)
            return

    def _changed(self, key: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(key)
            except Exception:  # noqa: BLE001 - a listener's bug never ends a fetch
                log.exception("fetch listener failed")

    def _fetch_once(self, key: str, source: Source, token: str | None, cancel: threading.Event) -> Fetched:
        pinned = self._pinned(source)
        with self._lock:
            repo_lock = self._repo_locks.setdefault(_lock_key(source), threading.Lock())
        while not repo_lock.acquire(timeout=LOCK_POLL):  # another source of the repository is being fetched
            if cancel.is_set():
                raise _Cancelled(source.text)
        try:  # sources sharing a repository: one after the other, a shared file fetched once
            local = self._in_store(pinned) if pinned.pinned else None  # else: resolve the branch online
            if local is not None:
                return local
            start = [self.clock(), None, 0]  # when, done at the first report, bytes resumed (not fetched)

            def resumed(n: int) -> None:
                start[2] += n

            def progress(done: int, total: int) -> None:
                if cancel.is_set():  # between two chunks: the connection closes as this unwinds
                    raise _Cancelled(source.text)
                d = self._downloads[key]
                if start[1] is None:
                    start[1] = done
                    self._set(key, done=done, total=total)
                    return
                skip = min(start[2], max(0, done - d.done))  # a resumed file's first report jumps over its partial
                start[2] -= skip
                start[1] += skip
                grown = max(0, done - d.done) - skip
                elapsed = self.clock() - start[0]
                rate = (done - start[1]) / elapsed if elapsed > 0 else 0.0
                self._set(key, done=done, total=total, rate=rate, downloaded=d.downloaded + grown)

            def on_file(path: str) -> None:
                with self._lock:
                    self._current[key] = path

            try:
                return fetch(pinned, self.store, self.store_dir, endpoint=self.endpoint, token=token,
                             progress=progress, disk_usage=self.disk_usage, on_resume=resumed, on_file=on_file)
            except _Cancelled:
                raise
            except FetchError as exc:
                local = None if exc.blocked else self._in_store(pinned)  # the hub is down: the store's ref
                if local is None:
                    raise
                log.warning("%s; using what the store holds for %s: commit %s", exc.reason, source.text,
                            local.commit[:12])
                return local
        finally:
            repo_lock.release()

    def _in_store(self, source: Source, any_ref: bool = False) -> Fetched | None:
        """The source as the store holds it, without network: a pinned commit, a URL's sha256, or a file
        source at the commit its ref names (a whole repository only when pinned: its ref may come from a
        fetch of one file of it; `any_ref`: at its ref all the same, as an offline fetch takes it). None when
        anything is missing."""
        if source.kind == "hf" and source.file is None and source.quant is None and \
                not is_commit_id(source.revision) and not any_ref:
            return None
        try:
            got = fetch(source, self.store.model_copy(update={"offline": True}), self.store_dir)
        except FetchError:
            return None
        if not got.files or not all(p.exists() for p in got.paths):
            return None
        return got

    # ---- pins ----------------------------------------------------------------------------------------
    def _pinned(self, source: Source) -> Source:
        """The source at its pinned commit (a hub source whose revision is a branch or tag, pinned before)."""
        if source.kind != "hf" or is_commit_id(source.revision) or self.pins is None:
            return source
        commit = read_pin(self.pins, source)
        return source if commit is None else replace(source, revision=commit)

    def _pin_moved(self, source: Source, d: Download) -> bool:
        """`pull --update` pinned the source to another commit: fetch it (the rollout follows)."""
        if source.kind != "hf" or is_commit_id(source.revision) or self.pins is None:
            return False
        pinned = self._pinned(source)
        return pinned is not source and pinned.revision != d.commit

    def _pin(self, source: Source, got: Fetched) -> None:
        if self.pins is not None:
            write_pin(self.pins, source, got.commit)


def read_pin(pins: Path, source: Source) -> str | None:
    """The commit a hub source (a branch or tag) is pinned to in `pins`, or None (not pinned, unreadable)."""
    try:
        data = read_state_json(pin_path(pins, source), "a pin")
    except (OSError, ValueError, FileRefused):
        return None
    commit = data.get("commit") if isinstance(data, dict) else None
    return commit if is_commit_id(commit) and data.get("source") == source.text else None


def write_pin(pins: Path, source: Source, commit: str) -> None:
    """Pin a hub source whose revision is a branch or tag to `commit` (what the daemon then serves)."""
    if source.kind != "hf" or is_commit_id(source.revision):
        return
    path = pin_path(pins, source)
    try:
        make_private_dir(path.parent)
        atomic_write(path, _json({"source": source.text, "revision": source.revision or "main", "commit": commit}))
    except OSError as exc:
        log.warning("cannot pin %s to %s at %s: %s", source.text, commit, path, exc)


def _lock_key(source: Source) -> str:
    return source.repo or source.url or source.text


def _may_need(wanted: Source, running: Source, current: str | None) -> bool:
    """Whether `wanted` may need the file the fetch of `running` is downloading now (`current`, a path in
    the repository; None: no file under way yet, nothing to lose): the same URL; the same file of one
    repository; a file of its quantisation; any file, for a whole repository (conservative: revisions are
    not compared, a file unchanged between two commits is one blob)."""
    if _lock_key(wanted) != _lock_key(running):
        return False
    if running.kind == "url":
        return True
    if current is None:
        return False
    if wanted.files:
        return current in wanted.files
    if wanted.quant is not None:
        return bool(quant_matches([current], wanted.quant))
    return True


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 5400 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def token_digest(token: str | None) -> str | None:
    """What a failure remembers of the token it was made with (a new token is tried at once), never the token."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def _json(data: dict) -> str:
    import json
    return json.dumps(data, sort_keys=True) + "\n"
