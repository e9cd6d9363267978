"""The daemon's one writer: a thread that settles, coalesces and indexes.

Watchers, git hooks and commands only put jobs on its queue. After the first job it keeps
draining until the queue has been quiet for the settle period (or a cap passes), merges
what it got (paths per source, one git update per source, one reconcile per source) and
then indexes. A failure is recorded against its source and logged; the thread goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contextd.app import App
from contextd.connectors.folder import IGNORE_FILES
from contextd.connectors.git import GitSource
from contextd.connectors.watch import GIT_EXCLUDE
from contextd.errors import ContextdError
from contextd.health import Health

log = logging.getLogger(__name__)

MAX_SETTLE_S = 2.0


@dataclass(frozen=True)
class PathsChanged:
    source: str
    paths: frozenset[str]


@dataclass(frozen=True)
class GitMoved:
    """A hook said HEAD or the index moved: update from the last indexed commit."""

    source: str


@dataclass(frozen=True)
class Reconcile:
    source: str | None  # None: every source


@dataclass
class Call:
    """Run fn on the worker (the one writer) and hand its result back to the caller."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass
class SourceState:
    pending: set[str] = field(default_factory=set)
    last_event: float | None = None
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=5))  # from indexing
    watch_error: str | None = None  # set while the source cannot be watched
    busy: bool = False
    rescans: int = 0  # looks at the whole source (start-up catch-up, a hook) queued

    @property
    def rescan(self) -> bool:
        return self.rescans > 0


class Worker(threading.Thread):
    def __init__(self, app: App, settle_s: float, reconcile_interval_s: float) -> None:
        super().__init__(name="contextd-worker", daemon=True)
        self.app = app
        self.settle_s = settle_s
        self.reconcile_interval_s = reconcile_interval_s
        self.queue: queue.Queue[object] = queue.Queue()
        self.stop_event = threading.Event()
        self.states: dict[str, SourceState] = {}
        self._states_lock = threading.Lock()
        self.working = False
        self.on_idle: Callable[[], None] = lambda: None  # the backlog's wake-up
        self.health = Health(app.settings.home)  # the daemon shares one with the backlog

    def busy(self) -> bool:
        """Is there indexing to do (or being done)? The embedding backlog steps aside."""
        return self.working or not self.queue.empty()

    # -- what other threads call ---------------------------------------------------------

    def state(self, source: str) -> SourceState:
        with self._states_lock:
            return self.states.setdefault(source, SourceState())

    def paths_changed(self, source: str, paths: set[str]) -> None:
        state = self.state(source)
        state.pending |= paths
        state.last_event = time.time()
        self.queue.put(PathsChanged(source, frozenset(paths)))

    def submit(self, job: object) -> None:
        if isinstance(job, Reconcile | GitMoved):  # until it runs, the source is not current
            names = [job.source] if job.source else [r.name for r in self.app.catalog.sources()]
            with self._states_lock:
                for name in names:
                    self.states.setdefault(name, SourceState()).rescans += 1
        self.queue.put(job)

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        job = Call(fn)
        self.queue.put(job)
        if not job.done.wait(timeout):
            raise ContextdError("The daemon is still busy with earlier work; try again shortly.")
        if job.error is not None:
            raise job.error
        return job.result

    def stop(self) -> None:
        self.stop_event.set()
        self.queue.put(None)

    # -- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        next_reconcile = time.monotonic() + self.reconcile_interval_s
        while not self.stop_event.is_set():
            wait = max(0.0, min(0.5, next_reconcile - time.monotonic()))
            try:
                first = self.queue.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() >= next_reconcile:
                    self.working = True
                    try:
                        self._process([Reconcile(None)])
                    finally:
                        self.working = False
                        self.on_idle()
                    next_reconcile = time.monotonic() + self.reconcile_interval_s
                continue
            if first is None:
                break
            self.working = True
            try:
                self._process([first, *self._settle()])
            finally:
                self.working = False
                self.on_idle()
        self._fail_pending_calls()

    def _settle(self) -> list[object]:
        jobs: list[object] = []
        cap = time.monotonic() + MAX_SETTLE_S
        while time.monotonic() < cap and not self.stop_event.is_set():
            try:
                job = self.queue.get(timeout=self.settle_s)
            except queue.Empty:
                break
            if job is None:
                self.stop_event.set()
                break
            jobs.append(job)
        return jobs

    def _process(self, jobs: list[object]) -> None:
        reconcile: set[str] = set()
        moved: set[str] = set()
        paths: dict[str, set[str]] = {}
        calls: list[Call] = []
        looks: Counter[str] = Counter()  # queued looks at a whole source that this batch takes
        for job in jobs:
            if isinstance(job, Reconcile):
                names = [job.source] if job.source else [r.name for r in self.app.catalog.sources()]
                reconcile.update(names)
                looks.update(names)
            elif isinstance(job, GitMoved):
                moved.add(job.source)
                looks[job.source] += 1
            elif isinstance(job, PathsChanged):
                paths.setdefault(job.source, set()).update(job.paths)
                if any(p.rsplit("/", 1)[-1] in IGNORE_FILES or p == GIT_EXCLUDE for p in job.paths):
                    reconcile.add(job.source)  # what is ignored changed: every file may be
            elif isinstance(job, Call):
                calls.append(job)
        for name in sorted(reconcile):
            self._guarded(name, self._reconcile, name, rescans=looks[name])
        for name in sorted(moved - reconcile):
            self._guarded(name, self._git_moved, name, rescans=looks[name])
        for name, changed in paths.items():
            if name not in reconcile:
                self._guarded(name, self._index_paths, name, changed)
            self.state(name).pending -= changed
        for job in calls:
            if self.stop_event.is_set():  # stopping: not now (loading the model takes seconds)
                job.error = ContextdError("The daemon is stopping; run the command again.")
                job.done.set()
                continue
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed to the caller, who reports it
                job.error = exc
            finally:
                job.done.set()

    def _guarded(self, name: str, fn: Callable[..., object], *args: Any, rescans: int = 0) -> None:
        state = self.state(name)
        state.busy = True
        with self._states_lock:  # queued no more: `busy` says it from here on
            state.rescans = max(0, state.rescans - rescans)  # the hourly one was never queued
        try:
            fn(*args)
            self.health.succeeded()
        except Exception as exc:
            self.health.failed(exc)
            if not isinstance(exc, ContextdError):
                log.exception("indexing %s failed", name)
            else:
                log.error("indexing %s failed: %s", name, exc)
            state.errors.append(f"{time.strftime('%H:%M:%S')} {exc}")
        finally:
            state.busy = False

    def _reconcile(self, name: str) -> None:
        stats = self.app.index(self.app.catalog.source(name), embed=False)
        self.state(name).errors.clear()  # the whole source was read: past indexing errors are over
        if stats.changed or stats.deleted:
            log.info("reconciled %s: %d changed, %d deleted", name, stats.changed, stats.deleted)

    def _git_moved(self, name: str) -> None:
        row = self.app.catalog.source(name)
        if row.kind != "git":
            return self._reconcile(name)
        source = GitSource(row.name, row.root)
        head = source.head()  # read before the diff: a later move is a later event
        scope = source.changed_since(row.indexed_commit)
        if scope is None:
            return self._reconcile(name)
        stats = self.app.index(row, scope=scope, commit=head, embed=False)
        log.info(
            "%s moved to %s: %d path(s) checked, %d changed",
            name,
            (head or "")[:10],
            len(scope),
            stats.changed + stats.deleted,
        )
        return None

    def _index_paths(self, name: str, paths: set[str]) -> None:
        try:
            row = self.app.catalog.source(name)
        except ContextdError:
            return  # removed while its events were queued
        self.app.index(row, scope=paths, embed=False)

    def _fail_pending_calls(self) -> None:
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, Call):
                job.error = ContextdError("The daemon is stopping; run the command again.")
                job.done.set()
