"""File watching: watchdog on the manifests dirs, the config file and the templates dir.

Events only mark the daemon dirty (`on_change`); the daemon debounces and coalesces them, and a
periodic full resync catches what events miss (network mounts, ConfigMap `..data` symlink swaps).
Open/read events are ignored, so reading the manifests never triggers a reconcile by itself, and so
are events under an `ignore`d dir: a state dir inside the manifests dir once woke the loop with every
record it wrote (~35 passes/s per model).
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("xgen_declare.reconciler.watch")

_CHANGES = {"created", "modified", "deleted", "moved", "closed"}


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def wakes(event_type: str, paths: list[str], only: str | None, ignore: tuple[str, ...]) -> bool:
    """Whether an event on `paths` (source, then destination of a move) marks the daemon dirty: a change,
    on `only` when given, to a path not under any `ignore`d dir (absolute, real paths)."""
    if event_type not in _CHANGES:
        return False
    if only is not None and only not in paths:
        return False
    return not all(any(_under(p, d) for d in ignore) for p in paths)


class _Handler(FileSystemEventHandler):
    def __init__(self, on_change: Callable[[str], None], only: str | None = None, ignore: tuple[str, ...] = ()):
        self.on_change, self.only, self.ignore = on_change, only, ignore

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [os.fsdecode(event.src_path)] + ([os.fsdecode(event.dest_path)] if getattr(event, "dest_path", "") else [])
        if wakes(event.event_type, paths, self.only, self.ignore):
            self.on_change(paths[0])


class Watcher:
    def __init__(self, dirs: list[str], files: list[str], on_change: Callable[[str], None],
                 ignore: list[str] = ()):
        """`ignore`: dirs whose events never wake the daemon (its own state dir)."""
        self.dirs, self.files, self.on_change = dirs, files, on_change
        self.ignore = _spellings(ignore)
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
            handler = _Handler(self.on_change, only, self._ignored_under(path))
            self.observer.schedule(handler, path, recursive=recursive)
            self.watched.add(key)
        except OSError as exc:
            log.warning("cannot watch %s (%s); periodic resync still applies", path, exc)

    def _ignored_under(self, path: str) -> tuple[str, ...]:
        """The ignored dirs strictly inside `path`, in each spelling watchdog may report: as given and
        through `path` (it reports paths under the watched dir as it was given, maybe a symlink). A
        state dir that IS the manifests dir (or holds it) mutes nothing."""
        real, given = os.path.realpath(path), os.path.abspath(path)
        out: set[str] = set()
        for d in self.ignore:
            for base in (real, given):
                if d != base and _under(d, base):
                    out.update((d, os.path.join(given, os.path.relpath(d, base))))
        return tuple(sorted(out))

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)


def _spellings(dirs) -> set[str]:
    """Each dir as given (absolute) and as its real path."""
    return {os.path.abspath(d) for d in dirs} | {os.path.realpath(d) for d in dirs}
