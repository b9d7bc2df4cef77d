"""The daemon's side of the model store: it owns the `Fetcher` (fetching.py; made again when `store:` in
the config changes) and shows each fetch where readers look, from the control loop:

  * the model's record: `download` {done, total, rate, source, text} while its source is fetched (status,
    the API, the dashboard; written at most every SHOW_PERIOD seconds), `downloaded_bytes` (every byte
    this daemon fetched for it, a resumed file counted again: /metrics);
  * events: download_started, download_finished (commit, path), download_failed (reason, retrying).

After each pass the fetches no model wants any more are cancelled (`after_pass`; fetching.py keeps their
partial files).

A fetch that ends (done, failed, retrying) wakes the loop for a pass at once (`wake`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from xgen_declare.manifests.source import Source
from xgen_declare.processes.supervisor import Supervisor
from xgen_declare.reconciler.env import Env
from xgen_declare.reconciler.fetching import BLOCKED, DONE, FETCHING, RETRYING, Download, Fetcher
from xgen_declare.reconciler.hubfacts import BACKGROUND, CACHED, HubMetadata
from xgen_declare.store.fetch import is_offline, store_dir_of

__all__ = ["Downloads", "SHOW_PERIOD", "store_fetcher"]

SHOW_PERIOD = 1.0


def store_fetcher(env: Env, network: bool, on_change: Callable[[str], None] | None = None,
                  hub_metadata: str | None = None) -> Fetcher:
    """The fetch owner of `env` (its config's store, pins in its state dir); `network=False`: a look in the
    store that starts nothing (`plan`, the API's preview). Its `metadata` reads the hub's metadata of the
    sources not in the store yet, for placement (hubfacts.py; `hub_metadata`: its mode, by default
    background with the network, else only what the state dir keeps)."""
    endpoint = os.environ.get("HF_ENDPOINT") or None
    f = Fetcher(env.config.store, store_dir_of(env.config), Path(env.store.root) / "pins",
                endpoint=endpoint, network=network, on_change=on_change)
    f.metadata = HubMetadata(Path(env.store.root) / "hubmeta", endpoint=endpoint, pinned=f._pinned,
                             mode=hub_metadata or (BACKGROUND if network else CACHED),
                             offline=is_offline(env.config.store), on_change=on_change)
    return f


class Downloads:
    def __init__(self, env: Env, sup: Supervisor, wake: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.env, self.sup, self.wake, self.clock = env, sup, wake, clock
        self._fetcher: Fetcher | None = None
        self._lookup: Fetcher | None = None
        self.fetching: dict[str, Source] = {}     # the last pass's models waiting for their files
        self._phase: dict[str, str] = {}          # model -> phase last shown (events on change)
        self._shown_at: dict[str, float] = {}
        self._bytes: dict[str, int] = {}            # model -> bytes fetched for it (what /metrics counts)
        self._counted: dict[tuple[str, str], int] = {}  # (model, source) -> fetched bytes added to its record

    def _made(self, current: Fetcher | None, network: bool) -> Fetcher:
        cfg = self.env.config
        store_dir = store_dir_of(cfg)
        if current is not None and current.store == cfg.store and current.store_dir == store_dir:
            return current
        if current is not None:
            current.close(timeout=0)
        return store_fetcher(self.env, network, (lambda key: self.wake("a fetch ended")) if network else None)

    def fetcher(self) -> Fetcher:
        """The fetch owner of the config in force (the pass's)."""
        self._fetcher = self._made(self._fetcher, True)
        return self._fetcher

    def lookup(self) -> Fetcher:
        """A look in the store that starts nothing (the API's plan preview, in its own thread)."""
        self._lookup = self._made(self._lookup, False)
        return self._lookup

    def after_pass(self, fetching: dict[str, Source], sources: dict[str, Source] | None = None,
                   unsure: set[str] | None = None) -> None:
        """`sources`: every model's hub or URL source this pass; a fetch none of them wants is cancelled, except
        those of the models in `unsure` (manifests this pass could not read; None: any model) that were
        fetching last pass: a typo mid-download does not throw the download away."""
        self.show(force=True)  # the last bytes of the fetches that ended, counted before they leave the list
        f = self._fetcher
        kept: dict[str, Source] = {}
        if f is not None and sources is not None:
            kept = {name: src for name, src in self.fetching.items()
                    if (unsure is None or name in unsure) and name not in sources}
            f.cancel_unwanted([*sources.values(), *kept.values()])
        for name, src in self.fetching.items():
            d = f.get(src) if f is not None and name not in fetching else None
            if d is not None and d.phase == DONE:  # its files are in the store: the pass starts it
                self._events(name, d)
        self.fetching = {**kept, **fetching}  # an unreadable manifest's fetch goes on, shown as before
        self.show(force=True)

    def show(self, force: bool = False) -> None:
        """Once per loop step: each waiting model's progress into its record, events on a change of phase."""
        now = self.clock()
        f = self._fetcher
        for name, p in list(self.sup.procs.items()):
            src = self.fetching.get(name)
            d = f.get(src) if f is not None and src is not None else None
            self._events(name, d)
            rec = p.rec
            shown = {**d.progress(), "source": d.source, "text": d.text()} if d is not None and \
                d.phase in (FETCHING, RETRYING) else None
            # the sum lives here too: a surge's swap gives the model its new process's (fresh) record
            grown = self._grown(name, d)
            if d is not None:
                self._counted[(name, d.source)] = max(d.downloaded, self._counted.get((name, d.source), 0))
            downloaded = self._bytes[name] = max(self._bytes.get(name, 0), rec.downloaded_bytes) + grown
            if shown == rec.download and downloaded == rec.downloaded_bytes:
                continue
            phase_changed = (shown is None) != (rec.download is None)
            if not (force or phase_changed or now - self._shown_at.get(name, 0.0) >= SHOW_PERIOD):
                continue
            rec.download, rec.downloaded_bytes = shown, downloaded
            self._shown_at[name] = now
            self.sup.save(rec)
            self.sup.publish(p)

    def _grown(self, name: str, d: Download | None) -> int:
        """Bytes the fetch downloaded since the record last counted them (the record keeps the sum across
        daemons: a resumed file counts only what is fetched again)."""
        if d is None:
            return 0
        return max(0, d.downloaded - self._counted.get((name, d.source), 0))

    def _events(self, name: str, d: Download | None) -> None:
        phase = d.phase if d is not None else None
        last = self._phase.get(name)
        if d is None:  # waiting no more (its files are there, or its source changed)
            self._phase.pop(name, None)
            return
        if phase == last:
            return
        hooks = self.sup.hooks
        self._phase[name] = phase  # type: ignore[assignment]
        if phase == FETCHING and last in (None, DONE, BLOCKED):
            hooks.event("download_started", model=name, source=d.source, total=d.total)
        elif phase == DONE:
            hooks.event("download_finished", model=name, source=d.source, commit=d.commit, path=d.path,
                        downloaded=d.downloaded)
        elif phase in (BLOCKED, RETRYING):
            hooks.event("download_failed", model=name, source=d.source, reason=d.error,
                        retrying=phase == RETRYING)

    def close(self) -> None:
        for f in (self._fetcher, self._lookup):
            if f is not None:
                f.close(timeout=0)
