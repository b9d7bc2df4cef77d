"""Placement before the download, the loop's side: the hub's metadata of each hub source not in the store
yet, and the GGUF header of each URL source not fetched yet (store/hubmeta.py reads both), so that `plan`
and the daemon know whether a model fits before its files are fetched. The control loop never waits on the
network:

  * `background` (the daemon, `apply`): a source not read yet is read in a worker thread, one per source;
    the pass says "placement unknown (metadata not read yet)" and the next one (woken by `on_change`) uses
    what was read;
  * `direct` (the `plan` verb, no daemon): read at once, within `timeout`;
  * `cached` (the API's preview): only what is kept.

A hub source whose fetch is resolving a branch that the store already holds at its ref (`hf download`, a
pull that pinned nothing) is placed from those files (`stored_facts`), never "placement unknown".

What was read is kept in the state dir by (source, commit), so a restarted daemon plans without the hub.
The commit is the source's pin (a commit in the manifest, or the one the store pinned), else the one last
read for its branch; a URL source's is its sha256. Offline (`store.offline`, HF_HUB_OFFLINE) nothing is
read, and the plan says so. A read that failed for a reason worth retrying (network, a truncated range, access refused) is tried again after
RETRY seconds (at once with another token); its reason shows meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from xgen_declare.desired.demands import facts_of
from xgen_declare.manifests.source import Source
from xgen_declare.names import is_commit_id
from xgen_declare.placement.gguf_facts import GgufError
from xgen_declare.placement.hub import NOT_READ, HubFacts
from xgen_declare.reconciler.fetching import token_digest
from xgen_declare.store.fetched import Fetched
from xgen_declare.store.hubmeta import TIMEOUT, MetaError, Read, cached_commit, load, read_hub_facts, save

__all__ = ["HubMetadata", "stored_facts", "BACKGROUND", "DIRECT", "CACHED", "RETRY", "OFFLINE", "DIRECT_TIMEOUT", "WORTH"]

log = logging.getLogger("xgen_declare.reconciler.hubfacts")

BACKGROUND, DIRECT, CACHED = "background", "direct", "cached"
RETRY = 60.0
DIRECT_TIMEOUT = 20.0
WORTH = 256 * 2**20  # background: a download smaller than this is placed from its files, seconds later
OFFLINE = "offline: the hub's metadata is not read (store.offline or HF_HUB_OFFLINE); fetch it with `xgen-declare pull`"


class HubMetadata:
    def __init__(self, cache: Path, *, endpoint: str | None, pinned: Callable[[Source], Source],
                 mode: str = BACKGROUND, offline: bool = False, timeout: float | None = None,
                 on_change: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 read: Callable[..., Read] = read_hub_facts) -> None:
        self.cache, self.endpoint, self.pinned, self.mode, self.offline = Path(cache), endpoint, pinned, mode, offline
        self.timeout = timeout if timeout is not None else (DIRECT_TIMEOUT if mode == DIRECT else TIMEOUT)
        self.on_change, self.clock, self.read = on_change, clock, read
        self._lock = threading.Lock()
        self._memo: dict[tuple[str, str], HubFacts] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._failed: dict[str, tuple[float, str, str | None]] = {}  # text -> (when, reason, token digest)
        self._read_at: dict[str, str] = {}  # text -> the commit this process read it at (a branch)

    def get(self, source: Source, token: str | None = None, *, network: bool = True) -> HubFacts:
        """What the hub says of `source` (a hub source), or why placement is unknown; never waits on the
        network except in `direct` mode (at most `timeout`). `network=False`: only what is kept."""
        found = self._kept(source)
        if found is not None:
            return found
        if self.offline:
            return HubFacts(source.text, reason=OFFLINE)
        with self._lock:
            failed = self._failed.get(source.text)
            if failed is not None and self.clock() - failed[0] < RETRY and failed[2] == token_digest(token):
                return HubFacts(source.text, reason=f"{NOT_READ}: {failed[1]}")
            if self.mode == CACHED or not network:
                return HubFacts(source.text, reason=NOT_READ)
            t = self._threads.get(source.text)
            if t is None or not t.is_alive():
                t = threading.Thread(target=self._run, args=(source, token), daemon=True,
                                     name=f"hub metadata {source.text[:40]}")
                self._threads[source.text] = t
                t.start()
        if self.mode == DIRECT:
            t.join(self.timeout + 1.0)
            if t.is_alive():
                return HubFacts(source.text, reason=f"{NOT_READ}: the hub did not answer within "
                                f"{self.timeout:.0f}s")
            failed = self._failed.get(source.text)
            if failed is not None:
                return HubFacts(source.text, reason=f"{NOT_READ}: {failed[1]}")
            return self._kept(source) or HubFacts(source.text, reason=NOT_READ)
        return HubFacts(source.text, reason=NOT_READ)

    def worth_reading(self, total: int | None) -> bool:
        """Whether to ask the hub for a source whose fetch has `total` bytes (None: no fetch of it here; 0:
        not known yet): always, except in `background` mode for a download known to be small."""
        return self.mode != BACKGROUND or total is None or total >= WORTH

    def _commit(self, source: Source) -> str | None:
        if source.kind == "url":  # its content is named by the manifest's sha256: the cache's key with the URL
            return source.sha256
        pinned = self.pinned(source)
        if is_commit_id(pinned.revision):
            return pinned.revision
        return self._read_at.get(source.text) or cached_commit(self.cache, source)

    def _kept(self, source: Source) -> HubFacts | None:
        commit = self._commit(source)
        if commit is None:
            return None
        key = (source.text, commit)
        with self._lock:
            found = self._memo.get(key)
        if found is None:
            found = load(self.cache, source, commit)
            if found is not None:
                with self._lock:
                    self._memo[key] = found
        return found

    def _run(self, source: Source, token: str | None) -> None:
        try:
            got = self.read(self.pinned(source), endpoint=self.endpoint, token=token, timeout=self.timeout)
        except MetaError as exc:
            self._fail(source, exc.reason, token)
            return
        except Exception as exc:  # noqa: BLE001 - a bug here costs this model its placement, never the loop
            log.exception("reading the hub's metadata of %s failed", source.text)
            self._fail(source, f"{type(exc).__name__}: {exc}", token)
            return
        facts = got.facts
        with self._lock:
            self._failed.pop(source.text, None)
            if facts.commit is not None:
                self._memo[(source.text, facts.commit)] = facts
                self._read_at[source.text] = facts.commit
        try:
            save(self.cache, source, got)
        except OSError as exc:  # kept in memory: this daemon still uses it
            log.warning("cannot keep the hub metadata of %s in %s: %s", source.text, self.cache, exc)
        if facts.reason:
            log.warning("%s: placement unknown: %s", source.text, facts.reason)
        self._changed(source)

    def _fail(self, source: Source, reason: str, token: str | None) -> None:
        with self._lock:
            self._failed[source.text] = (self.clock(), reason, token_digest(token))
        log.warning("reading the hub's metadata of %s: %s (placement unknown; tried again in %.0fs)", source.text,
                    reason, RETRY)
        self._changed(source)

    def _changed(self, source: Source) -> None:
        if self.on_change is not None and self.mode == BACKGROUND:
            try:
                self.on_change(source.text)
            except Exception:  # noqa: BLE001 - a listener's bug never ends a read
                log.exception("hub metadata listener failed")


def stored_facts(source: Source, got: Fetched | None) -> HubFacts | None:
    """Placement from the files the store already holds for `source` (a GGUF at the commit its ref names: put
    there by `hf download`, or by a pull that pinned nothing) while the fetch resolves the branch on the hub:
    the model is in the store, so never "placement unknown". None when the store holds no GGUF of it."""
    if got is None or got.local_path == got.snapshot:
        return None
    try:
        facts = facts_of(str(got.local_path))
    except GgufError:  # the file's own error shows once the fetch is done; the hub's metadata meanwhile
        return None
    return HubFacts(source.text, got.commit, got.files[0].path, facts=facts, stored=True)
