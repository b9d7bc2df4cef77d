"""File watching: watchdog on the manifests dirs, the config file and the templates dir.

Events only mark the daemon dirty (`on_change`); the daemon debounces and coalesces them, and a
periodic full resync catches what events miss (network mounts, ConfigMap `..data` symlink swaps).
Open/read events are ignored, so reading the manifests never triggers a reconcile by itself.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("xgen_declare.reconciler.watch")

_CHANGES = {"created", "modified", "deleted", "moved", "closed"}


class _Handler(FileSystemEventHandler):
    def __init__(self, on_change: Callable[[str], None], only: str | None = None):
        self.on_change, self.only = on_change, only

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGES:
            return
        paths = [os.fsdecode(event.src_path)] + ([os.fsdecode(event.dest_path)] if getattr(event, "dest_path", "") else [])
        if self.only is not None and self.only not in paths:
            return
        self.on_change(paths[0])


class Watcher:
    def __init__(self, dirs: list[str], files: list[str], on_change: Callable[[str], None]):
        self.dirs, self.files, self.on_change = dirs, files, on_change
        self.observer = Observer()
        self.watched: set[str] = set()

    def start(self) -> None:
        self.observer.start()
        self.ensure()

    def ensure(self) -> None:
        """(Re)schedule watches whose target exists now (a missing dir is retried at each resync)."""
        for d in self.dirs:
            self._schedule(d, d, True, None)
        for f in self.files:
            self._schedule(f, os.path.dirname(os.path.abspath(f)), False, os.path.abspath(f))

    def _schedule(self, key: str, path: str, recursive: bool, only: str | None) -> None:
        if key in self.watched or not os.path.isdir(path):
            return
        try:
            self.observer.schedule(_Handler(self.on_change, only), path, recursive=recursive)
            self.watched.add(key)
        except OSError as exc:
            log.warning("cannot watch %s (%s); periodic resync still applies", path, exc)

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
