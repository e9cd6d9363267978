"""The daemon's embedding backlog: a thread that embeds what pass 1 left pending.

The worker makes changes searchable (catalog and lexical index) and wakes this thread.
It embeds the backlog slice by slice (`Indexer.embed_pending`), stepping aside whenever
the worker has indexing to do, so that new changes become searchable first. Its rate and
the backlog's size give `status` and `contextd index` their progress and ETA.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from contextd.app import App
from contextd.errors import ContextdError
from contextd.health import Health
from contextd.pipeline import IndexStats

log = logging.getLogger(__name__)

RETRY_S = 30.0  # after a failure (model, store), try again this much later
RATE_WINDOW_S = 600.0  # the rate (and ETA) is measured over this much recent wall time
RATE_MIN_S = 60.0  # shorter than this, the current drain's own rate is used


@dataclass
class BacklogState:
    embedded: int = 0  # chunk texts embedded since the daemon started
    cached: int = 0  # chunks stored from the embedding cache
    rate: float = 0.0  # chunks per second over the current drain
    active: bool = False
    error: str | None = None


class Backlog(threading.Thread):
    def __init__(self, app: App, busy: Callable[[], bool]) -> None:
        super().__init__(name="contextd-backlog", daemon=True)
        self.app = app
        self.busy = busy  # the worker has indexing to do: step aside
        self.state = BacklogState()
        self.health = Health(app.settings.home)  # the daemon shares one with the worker
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # (monotonic time, chunks done since start): the rate over recent wall time counts
        # the pauses for the worker and the slowing of a long drain, as the ETA must.
        self._samples: deque[tuple[float, int]] = deque()

    def wake(self) -> None:
        self._wake.set()

    def retry(self) -> None:
        """Try again now, forgetting the last failure (an `index` asked for it)."""
        self.state.error = None
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def pending(self, sources: list[str] | None = None) -> int:
        return self.app.catalog.pending_count(sources)

    def eta_s(self, pending: int) -> float | None:
        rate = self.state.rate
        return pending / rate if pending and rate > 0 else None

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=RETRY_S if self.state.error else 5.0)
            self._wake.clear()
            if self._stopping.is_set():
                break
            if self.busy() or not self.pending():
                continue
            self._drain()

    def observe(self, now: float, done: int, drain_rate: float) -> None:
        """Note `done` chunks at `now`; the rate is theirs over the last RATE_WINDOW_S,
        or the drain's own while less than RATE_MIN_S of it is known."""
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        then, before = self._samples[0]
        if now - then >= RATE_MIN_S:
            self.state.rate = (done - before) / (now - then)
        elif drain_rate > 0:
            self.state.rate = drain_rate

    def _drain(self) -> None:
        self.state.active, self.state.error = True, None
        base_embedded, base_cached = self.state.embedded, self.state.cached
        self.observe(time.monotonic(), base_embedded + base_cached, 0.0)
        stats = IndexStats("")

        def progress(s: IndexStats) -> None:
            self.state.embedded = base_embedded + s.embedded
            self.state.cached = base_cached + s.cached
            drain = (s.embedded + s.cached) / s.embed_seconds if s.embed_seconds > 0 else 0.0
            self.observe(time.monotonic(), self.state.embedded + self.state.cached, drain)

        started = time.perf_counter()
        try:
            self.app.indexer.embed_pending(
                stats,
                progress,
                pause=lambda: self._stopping.is_set() or self.busy(),
                stopping=self._stopping,  # `contextd stop` waits for one batch, not a slice
            )
            progress(stats)
            if stats.embedded or stats.cached:
                self.health.succeeded()
                log.info(
                    "embedded %d chunk(s), %d from the cache, in %.1fs (%d pending)",
                    stats.embedded,
                    stats.cached,
                    time.perf_counter() - started,
                    stats.pending,
                )
        except Exception as exc:  # the daemon outlives a failing model or store
            self.health.failed(exc)
            if isinstance(exc, ContextdError):  # says what is wrong and what to do
                log.error("embedding the backlog failed: %s; retrying in %.0fs", exc, RETRY_S)
            else:
                log.exception("embedding the backlog failed; retrying in %.0fs", RETRY_S)
            self.state.error = f"{time.strftime('%H:%M:%S')} {exc}"
        finally:
            self.state.active = False
            if not self.pending():
                self._samples.clear()  # time idle with nothing to do is no slowness
            elif not self.state.error:
                self._wake.set()  # stepped aside for the worker: come back when it is done
