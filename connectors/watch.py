"""Watching source folders with watchdog: handlers only enqueue.

Every event is reduced to paths relative to the source root and handed to `emit`; the
worker settles, coalesces and reads the disk itself, so an editor's atomic save (write a
temp file, rename it over the original) is indexed once, as its final content. Swap and
temp files and git's own `.git/` churn never reach the worker.

When the OS refuses more inotify watches, that source is polled instead and says so.
watchdog raises only when the root itself cannot be watched; a sub-folder it cannot watch
(fs.inotify.max_user_watches reached, at start or when folders are created later) it
skips silently, and edits there would never be seen. So after scheduling, and again after
new folders appear, the folders of the tree are checked against the watches the kernel
really holds (/proc/self/fdinfo). Unwatched folders are not proof of the limit: on a busy
machine watchdog adds a new folder's watch late, and after an overflow of inotify's queue
it adds them all again. So the kernel is asked whether it would take one more watch. If it
refuses, the source moves to polling; if not, the folders are checked again a little later
and, still unwatched, the tree is watched anew. Either way the source is reconciled, so
what happened meanwhile is caught up.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from contextd.connectors.filters import data_dir_above, is_temp_file

log = logging.getLogger(__name__)

IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})
GIT_EXCLUDE = ".git/info/exclude"  # the one file in .git that changes what is indexed
# Only changes. By default watchdog also asks inotify for every open and read-only close:
# in a large tree, reads alone (an editor, grep, git, the reconcile's own hashing) then
# overflow the kernel's queue, and each overflow makes watchdog re-add every watch.
CHANGES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
LIMIT_ERRORS = frozenset({errno.ENOSPC, errno.EMFILE})
RECHECK_S = 1.0  # after new folders appear: let watchdog add their watches, then look
PATIENCE = 3  # checks a few seconds apart that find folders unwatched before a new watch
IN_CREATE = 0x100

Emit = Callable[[str, set[str]], None]
LIMIT_HINT = (
    "raise fs.inotify.max_user_watches (e.g. `sudo sysctl fs.inotify.max_user_watches=524288`)"
    " and restart the daemon to get events back"
)


def watched_inodes() -> set[int] | None:
    """Inodes of the folders this process holds inotify watches on; None where /proc
    cannot tell (not Linux, or no inotify in use)."""
    inodes: set[int] = set()
    found = False
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
                found = True
                for line in info:
                    if line.startswith("inotify wd:") and " ino:" in line:
                        inodes.add(int(line.split(" ino:", 1)[1].split()[0], 16))
        except (OSError, ValueError):
            continue
    return inodes if found else None


def unwatched_folders(root: Path, inodes: set[int], limit: int = 5) -> list[str]:
    """Up to `limit` folders under `root` (outside `.git/`) without a watch."""
    missing: list[str] = []
    stack = [str(root)]
    while stack and len(missing) < limit:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    if folder == str(root) and entry.name == ".git":
                        continue
                    if not os.access(entry.path, os.R_OK | os.X_OK):
                        continue  # inotify cannot watch it either; not the limit
                    if entry.inode() not in inodes:
                        missing.append(os.path.relpath(entry.path, root))
                    stack.append(entry.path)
        except OSError:
            continue  # vanished or unreadable meanwhile
    return missing


def kernel_refuses_watch(folder: Path) -> bool:
    """Would inotify refuse this user one more watch (max_user_watches or
    max_user_instances reached)? Asked by adding one, in an instance of its own."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_CLOEXEC)
    except (OSError, AttributeError):
        return False  # no inotify here: nothing was refused
    if fd < 0:
        return ctypes.get_errno() in LIMIT_ERRORS
    try:
        added = libc.inotify_add_watch(fd, os.fsencode(folder), IN_CREATE)
        return added < 0 and ctypes.get_errno() in LIMIT_ERRORS
    finally:
        os.close(fd)


def _some(folders: list[str]) -> str:
    return ", ".join(folders[:3]) + (" and more" if len(folders) > 3 else "")


def _identity(root: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


class _Handler(FileSystemEventHandler):
    def __init__(
        self,
        source: str,
        root: Path,
        emit: Emit,
        new_folder: Callable[[str], None],
        lost_root: Callable[[str], None],
    ) -> None:
        self.source = source
        self.root = str(root)
        self.emit = emit
        self.new_folder = new_folder
        self.lost_root = lost_root

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        if event.event_type in ("deleted", "moved") and os.fsdecode(event.src_path) == self.root:
            self.lost_root(self.source)  # the watch died with the folder
        if event.is_directory and event.event_type in ("created", "moved"):
            self.new_folder(self.source)
        paths: set[str] = set()
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            rel = os.path.relpath(os.fsdecode(raw), self.root).replace(os.sep, "/")
            if rel == "." or rel.startswith("../") or rel == ".git":
                continue
            if rel.startswith(".git/") and rel != GIT_EXCLUDE:  # git's own churn
                continue
            if event.is_directory and event.event_type == "modified":
                continue  # a folder's own mtime; its files report themselves
            if is_temp_file(rel.rsplit("/", 1)[-1]):
                continue
            if data_dir_above(Path(self.root), rel if not event.is_directory else rel + "/x"):
                continue  # a data dir's own writes (contextd's catalog and logs) go round
            paths.add(rel)
        if paths:
            self.emit(self.source, paths)


class Watchers:
    """One inotify observer for every source, and a polling one for sources it refused."""

    def __init__(
        self,
        emit: Emit,
        polling_interval_s: float = 2.0,
        force_polling: bool = False,
        on_fallback: Callable[[str], None] | None = None,
    ):
        self.emit = emit
        self.force_polling = force_polling
        self.polling_interval_s = polling_interval_s
        self.on_fallback = on_fallback  # a source's watch missed a while: catch up
        self._events: BaseObserver = Observer()
        self._polling: BaseObserver = PollingObserver(timeout=polling_interval_s)
        self._watches: dict[str, tuple[str, object]] = {}
        self._roots: dict[str, Path] = {}
        self._identities: dict[str, tuple[int, int] | None] = {}
        self._lost: set[str] = set()  # sources whose root's watch reported it gone
        self._checks: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()
        # Observer threads call _new_folder while holding their own lock, and _lock is held
        # around schedule/unschedule, which take it: so _new_folder takes only this one.
        self._checks_lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        self._events.start()
        self._polling.start()
        self._started = True

    def watch(self, source: str, root: Path) -> str:
        """Start watching one source; returns its mode, "events" or "polling"."""
        with self._lock:
            self._unwatch(source)
            handler = self._handler(source, root)
            self._roots[source] = root
            self._identities[source] = _identity(root)
            with self._checks_lock:
                self._lost.discard(source)
            if not self.force_polling:
                try:
                    watch = self._events.schedule(
                        handler, str(root), recursive=True, event_filter=CHANGES
                    )
                except OSError as exc:
                    if exc.errno not in LIMIT_ERRORS:
                        raise
                    log.warning(
                        "%s: %s; polling every %gs instead; %s",
                        source,
                        exc.strerror or exc,
                        self.polling_interval_s,
                        LIMIT_HINT,
                    )
                else:
                    self._watches[source] = ("events", watch)
                    missing = self._unwatched(root)
                    if not missing:
                        return "events"
                    if not self._refused(source, root, missing):
                        self._new_folder(source)  # watchdog may be adding them still
                        return "events"
                    self._unschedule(source)
            return self._poll(source, root, handler)

    def _poll(self, source: str, root: Path, handler: _Handler) -> str:
        watch = self._polling.schedule(handler, str(root), recursive=True, event_filter=CHANGES)
        self._watches[source] = ("polling", watch)
        return "polling"

    def _unwatched(self, root: Path, limit: int = 5) -> list[str]:
        """Folders of the tree without an inotify watch (none where /proc cannot tell)."""
        inodes = watched_inodes()
        return [] if inodes is None else unwatched_folders(root, inodes, limit)

    def _refused(self, source: str, root: Path, missing: list[str]) -> bool:
        """Is the watch limit why `missing` have no watch? Says so if it is."""
        if not kernel_refuses_watch(root / missing[0]):
            return False
        log.warning(
            "%s: inotify watch limit reached, %s not watched; polling every %gs instead; %s",
            source,
            _some(missing),
            self.polling_interval_s,
            LIMIT_HINT,
        )
        return True

    def _new_folder(self, source: str, attempt: int = 0) -> None:
        """New folders in an event-watched source: check their watches a moment later."""
        with self._checks_lock:
            if self._started and source not in self._checks and self.mode(source) == "events":
                delay = RECHECK_S * 2**attempt
                timer = threading.Timer(delay, self._recheck, (source, attempt))
                timer.daemon = True
                self._checks[source] = timer
                timer.start()

    def _recheck(self, source: str, attempt: int = 0) -> None:
        with self._checks_lock:
            self._checks.pop(source, None)
        with self._lock:
            root = self._roots.get(source)
            if root is None or self.mode(source) != "events" or not self._started:
                return
            if not self._unwatched(root, limit=1):
                return
        time.sleep(RECHECK_S / 2)  # a folder created this instant may be getting its watch
        with self._lock:
            if self._roots.get(source) != root or self.mode(source) != "events":
                return
            missing = self._unwatched(root)
            if not missing:
                return
            handler = self._handler(source, root)
            if self._refused(source, root, missing):
                self._unschedule(source)
                self._poll(source, root, handler)
            elif attempt + 1 < PATIENCE:
                self._new_folder(source, attempt + 1)  # busy: watchdog is behind
                return
            elif attempt + 1 == PATIENCE:
                log.info(
                    "%s: %s had no inotify watch, though the kernel takes more (a busy "
                    "moment, or inotify's queue overflowed); watching the tree anew",
                    source,
                    _some(missing),
                )
                self._unschedule(source)
                try:
                    watch = self._events.schedule(handler, str(root), recursive=True,
                                                  event_filter=CHANGES)  # fmt: skip
                except OSError as exc:  # refused now, or the root went: poll it instead
                    log.warning("%s: cannot watch %s again (%s); polling", source, root, exc)
                    self._poll(source, root, handler)
                else:
                    self._watches[source] = ("events", watch)
                    self._new_folder(source, attempt + 1)  # and look once more
            else:
                log.warning(
                    "%s: %s still had no inotify watch after watching the tree anew, "
                    "though the kernel takes more; polling every %gs instead",
                    source,
                    _some(missing),
                    self.polling_interval_s,
                )
                self._unschedule(source)
                self._poll(source, root, handler)
        if self.on_fallback:
            self.on_fallback(source)  # edits in the unwatched folders went unseen: catch up

    def _handler(self, source: str, root: Path) -> _Handler:
        return _Handler(source, root, self.emit, self._new_folder, self._lost_root)

    def _lost_root(self, source: str) -> None:
        with self._checks_lock:  # called on an observer's thread: not self._lock
            self._lost.add(source)

    def replaced_roots(self) -> list[str]:
        """Sources whose root folder went away: its watch said so, or it is gone, or it
        is another folder now (deleted and made again, a fresh clone in its place). Their
        watch no longer sees anything."""
        with self._checks_lock:
            lost = set(self._lost)
        with self._lock:
            roots = self._roots.items()
            return [
                s for s, root in roots if s in lost or _identity(root) != self._identities.get(s)
            ]

    def mode(self, source: str) -> str | None:
        entry = self._watches.get(source)
        return entry[0] if entry else None

    def unwatch(self, source: str) -> None:
        with self._lock:
            self._unwatch(source)

    def _unwatch(self, source: str) -> None:
        self._roots.pop(source, None)
        self._identities.pop(source, None)
        self._unschedule(source)

    def _unschedule(self, source: str) -> None:
        """Stop the source's watch (to watch it another way: its root stays known)."""
        with self._checks_lock:
            timer = self._checks.pop(source, None)
        if timer:
            timer.cancel()
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
        with self._checks_lock:
            self._started = False
            for timer in self._checks.values():
                timer.cancel()
            self._checks.clear()
        for observer in (self._events, self._polling):
            observer.stop()
        for observer in (self._events, self._polling):
            observer.join(timeout=5)
