"""Watching source folders with watchdog: handlers only enqueue.

Every event is reduced to paths relative to the source root and handed to `emit`; the
worker settles, coalesces and reads the disk itself, so an editor's atomic save (write a
temp file, rename it over the original) is indexed once, as its final content. Swap and
temp files and git's own `.git/` churn never reach the worker. When the OS refuses more
inotify watches, that source is polled instead and says so.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from contextd.connectors.filters import is_temp_file

log = logging.getLogger(__name__)

IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})
LIMIT_ERRORS = frozenset({errno.ENOSPC, errno.EMFILE})

Emit = Callable[[str, set[str]], None]


class _Handler(FileSystemEventHandler):
    def __init__(self, source: str, root: Path, emit: Emit) -> None:
        self.source = source
        self.root = str(root)
        self.emit = emit

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        paths: set[str] = set()
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            rel = os.path.relpath(os.fsdecode(raw), self.root).replace(os.sep, "/")
            if rel == "." or rel.startswith("../") or rel == ".git" or rel.startswith(".git/"):
                continue
            if event.is_directory and event.event_type == "modified":
                continue  # a folder's own mtime; its files report themselves
            if is_temp_file(rel.rsplit("/", 1)[-1]):
                continue
            paths.add(rel)
        if paths:
            self.emit(self.source, paths)


class Watchers:
    """One inotify observer for every source, and a polling one for sources it refused."""

    def __init__(self, emit: Emit, polling_interval_s: float = 2.0, force_polling: bool = False):
        self.emit = emit
        self.force_polling = force_polling
        self._events: BaseObserver = Observer()
        self._polling: BaseObserver = PollingObserver(timeout=polling_interval_s)
        self._watches: dict[str, tuple[str, object]] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        self._events.start()
        self._polling.start()
        self._started = True

    def watch(self, source: str, root: Path) -> str:
        """Start watching one source; returns its mode, "events" or "polling"."""
        with self._lock:
            self._unwatch(source)
            handler = _Handler(source, root, self.emit)
            if not self.force_polling:
                try:
                    watch = self._events.schedule(handler, str(root), recursive=True)
                    self._watches[source] = ("events", watch)
                    return "events"
                except OSError as exc:
                    if exc.errno not in LIMIT_ERRORS:
                        raise
                    log.warning("%s: %s; falling back to polling", source, exc.strerror or exc)
            watch = self._polling.schedule(handler, str(root), recursive=True)
            self._watches[source] = ("polling", watch)
            return "polling"

    def mode(self, source: str) -> str | None:
        entry = self._watches.get(source)
        return entry[0] if entry else None

    def unwatch(self, source: str) -> None:
        with self._lock:
            self._unwatch(source)

    def _unwatch(self, source: str) -> None:
        entry = self._watches.pop(source, None)
        if entry:
            observer = self._events if entry[0] == "events" else self._polling
            try:
                observer.unschedule(entry[1])  # type: ignore[arg-type]
            except (KeyError, OSError):
                pass

    def stop(self) -> None:
        if not self._started:
            return
        for observer in (self._events, self._polling):
            observer.stop()
        for observer in (self._events, self._polling):
            observer.join(timeout=5)
        self._started = False
