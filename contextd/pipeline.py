"""Index a source in two passes: searchable first, then complete.

Pass 1 (`Indexer.index`): what changed -> chunks (on a small thread pool) -> one catalog
transaction per batch replaces the batch's file rows, chunk rows and lexical entries.
From then on the chunks are searchable lexically; new ones are marked `embedded = 0`.
Chunk ids that no longer exist are then deleted from the vector store, and new chunks
whose text the embedding cache knows (a branch switched back) are stored at once.

Pass 2 (`Indexer.embed_pending`): the backlog of unembedded chunks, files someone just
changed first, then the longest waiting. Texts the embedding cache has never seen are
embedded (one text once, whatever the number of files holding it) on a model thread
while the previous slice is written: vectors to the cache, chunks to the vector store,
then `embedded = 1`. The daemon runs it in the background; `contextd index` waits.

Any interruption leaves only what the next run repairs: a source is marked dirty while
pass 1 runs, and a dirty source is swept first (store ids without a catalog row are
deleted; rows marked embedded that the store lacks go back to the backlog). A chunk
written to the store but not yet marked is simply written again. Pass 1 needs only the
catalog: with a Chroma server that cannot be reached, changes still become searchable by
keyword, and the source stays dirty until a run can delete the vectors they replaced.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from contextd.catalog import Catalog, SourceRow, StoredChunk, lexical_entry
from contextd.connectors import open_source, scan_changes
from contextd.connectors.git import GitSource
from contextd.embedder import Embedder, EmbeddingStopped
from contextd.errors import STORE_NOT_NOW
from contextd.indexers import ChunkerRegistry, language_of
from contextd.records import Change, ChangeKind, Chunk, FileState, Skip, Touch
from contextd.settings import Settings
from contextd.store import VectorStore

log = logging.getLogger(__name__)

BATCH_CHUNKS = 2048  # chunks per catalog transaction in pass 1
OPTIMIZE_MIN_FILES = 500  # files changed in one run that merge the keyword index after it
BATCH_FILES = 200
LOOKAHEAD = 32  # files being chunked ahead of the catalog writer
EMBED_SLICE = 512  # chunks per model call in pass 2: long enough to sort by length
RECENT_S = 600.0  # files changed this recently are embedded before the rest of the backlog
CACHE_TRIM_EVERY_S = 3600.0  # the embedding cache is trimmed at most this often


@dataclass
class IndexStats:
    source: str
    files: int = 0  # files indexed in the source after the run
    chunks: int = 0  # chunks in the source after the run
    skipped: int = 0  # files skipped in the source after the run
    scanned: int = 0
    changed: int = 0
    deleted: int = 0
    embedded: int = 0  # distinct chunk texts embedded in this run
    cached: int = 0  # chunks whose vector was already in the embedding cache
    pending: int = 0  # chunks searchable lexically only, waiting for their vectors
    seconds: float = 0.0
    searchable_seconds: float = 0.0  # when pass 1 ended: everything lexically searchable
    embed_seconds: float = 0.0  # wall time of pass 2 (model, cache and store writes)
    total_files: int = 0  # candidates listed, for progress
    phase: str = "scanning"  # scanning | embedding | done

    @property
    def embed_rate(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("total_files")
        out.pop("phase")
        for key in ("seconds", "searchable_seconds", "embed_seconds"):
            out[key] = round(getattr(self, key), 3)
        out["embed_rate"] = round(self.embed_rate, 1)
        return out


Progress = Callable[[IndexStats], None]


class _Either:
    """Set when this call's own event is (an error, Ctrl-C) or the caller's (a stop)."""

    def __init__(self, own: threading.Event, caller: threading.Event | None) -> None:
        self.own, self.caller = own, caller

    def set(self) -> None:
        self.own.set()

    def is_set(self) -> bool:
        return self.own.is_set() or bool(self.caller and self.caller.is_set())


def chunk_id(source: str, path: str, chunk_hash: str, occurrence: int) -> str:
    key = f"{source}\0{path}\0{chunk_hash}\0{occurrence}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def metadata(source: str, chunk: Chunk) -> dict[str, object]:
    return {
        "source": source,
        "path": chunk.path,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "symbol": chunk.symbol,
        "language": chunk.language,
        "hash": chunk.hash,
    }


@dataclass(frozen=True)
class Prepared:
    """One changed file, chunked and tokenised for the lexical index, ready to write."""

    change: Change
    chunks: list[tuple[str, Chunk]]
    lexical: list[tuple[str, str]]


@dataclass
class _Batch:
    files: list[Prepared] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    @property
    def n_chunks(self) -> int:
        return sum(len(p.chunks) for p in self.files)

    def __bool__(self) -> bool:
        return bool(self.files or self.skips or self.touches or self.deletes)


@dataclass
class _Slice:
    """A slice of the backlog on its way through the model."""

    rows: list[StoredChunk]
    todo: list[str]  # hashes sent to the model, in order
    texts: int
    vectors: Future[np.ndarray] | None


class Indexer:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: Callable[[], VectorStore],
        embedder: Embedder,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self._store = store  # opened at first use, again after it was lost or unreachable
        self.embedder = embedder
        self.counter = embedder.token_counter()
        self._local = threading.local()  # a tree-sitter parser serves one thread at a time
        # Catalog rows and store writes of one file change together: pass 1 (the worker)
        # and pass 2 (the backlog) take turns under this lock.
        self.write_lock = threading.RLock()
        self._trimmed_at: float | None = None  # time.monotonic() of the last cache trim

    @property
    def store(self) -> VectorStore:
        return self._store()

    @property
    def chunkers(self) -> ChunkerRegistry:
        registry: ChunkerRegistry | None = getattr(self._local, "chunkers", None)
        if registry is None:
            registry = ChunkerRegistry(self.counter, self.settings.parse_timeout_s)
            self._local.chunkers = registry
        return registry

    # -- pass 1: chunks into the catalog and the lexical index ----------------------------

    def index(
        self,
        row: SourceRow,
        progress: Progress | None = None,
        scope: Collection[str] | None = None,
        commit: str | None = None,
    ) -> IndexStats:
        """Bring a source's catalog (or, with `scope`, those paths of it) in line with disk.

        A full run records the HEAD it started from; a scoped run records `commit` when
        given (a git event whose scope is everything changed since the recorded commit).
        New chunks are lexically searchable when this returns; `embed_pending` embeds them.
        """
        started = time.perf_counter()
        stats = IndexStats(row.name)
        source = open_source(row.name, row.root, row.kind)
        if scope is None and isinstance(source, GitSource):
            commit = source.head()
        behind = False  # the store could not be told of every change: stay dirty
        if row.dirty:
            log.info("source %s was interrupted; sweeping the store", row.name)
            try:
                self.sweep(row.name)
            except STORE_NOT_NOW:
                behind = True
        self.catalog.mark_source(row.name, dirty=True)
        scan = scan_changes(
            source, self.catalog.file_states(row.name), self.settings.max_file_bytes, scope
        )
        stats.total_files = len(scan.paths)
        batch = _Batch()
        for event, prepared in self._prepared(scan):
            if prepared is not None:
                stats.scanned += 1
                batch.files.append(prepared)
            elif isinstance(event, Change):  # a deletion
                batch.deletes.append(event.path)
            else:
                stats.scanned += 1
                if isinstance(event, Skip):
                    batch.skips.append(event)
                elif isinstance(event, Touch):
                    batch.touches.append(event)
            if batch.n_chunks >= BATCH_CHUNKS or len(batch.files) >= BATCH_FILES:
                behind |= not self._flush(row.name, batch, stats, progress)
                batch = _Batch()
            elif progress and stats.scanned % 50 == 0:
                progress(stats)
        behind |= not self._flush(row.name, batch, stats, progress)
        if behind:
            log.warning(
                "%s: the vector store cannot be used now; the changes are searchable by "
                "keyword, and the vectors they replaced are deleted once it can",
                row.name,
            )
        self.catalog.mark_source(
            row.name, dirty=behind, indexed_commit=commit, reconciled=scope is None
        )
        if stats.changed + stats.deleted >= OPTIMIZE_MIN_FILES:
            self._optimize_lexical()
        counts = self.catalog.counts(row.name)
        stats.files, stats.chunks = counts["files"], counts["chunks"]
        stats.skipped, stats.pending = counts["skipped"], counts["pending"]
        stats.seconds = stats.searchable_seconds = time.perf_counter() - started
        if progress:
            progress(stats)
        return stats

    def _optimize_lexical(self) -> None:
        """Merge the keyword index into one segment after a large change. Replaced text
        stays in its segments until merged: on the standard library after some reindexes
        its data was 79 MB where 24 MB held it, and keyword queries ran 20-25% slower."""
        started = time.perf_counter()
        self.catalog.optimize_lexical()  # FTS pages only: no chunk or vector changes
        log.info("keyword index merged in %.1fs", time.perf_counter() - started)

    def _prepared(self, events: Iterable[object]) -> Iterator[tuple[object, Prepared | None]]:
        """Each scan event in order, changed files chunked ahead on a small thread pool.

        The tokenizer releases the GIL, so two threads chunk about 1.5x faster than one.
        """
        ahead: deque[tuple[object, Future[Prepared] | None]] = deque()
        with ThreadPoolExecutor(
            self.settings.chunk_threads, thread_name_prefix="contextd-chunk"
        ) as pool:
            for event in events:
                job = None
                if isinstance(event, Change) and event.kind is not ChangeKind.DELETED:
                    job = pool.submit(self._prepare, event)
                ahead.append((event, job))
                while ahead and (len(ahead) > LOOKAHEAD or ahead[0][1] is None):
                    first, job = ahead.popleft()
                    yield first, job.result() if job else None
            while ahead:
                first, job = ahead.popleft()
                yield first, job.result() if job else None

    def _prepare(self, change: Change) -> Prepared:
        chunks = self._chunk(change)
        return Prepared(change, chunks, [lexical_entry(c) for _, c in chunks])

    def _chunk(self, change: Change) -> list[tuple[str, Chunk]]:
        try:
            chunks = self.chunkers.chunk(change.path, change.text)
        except Exception:  # a chunker bug must cost one file, not the run
            log.exception("chunking %s failed; indexing it as plain windows", change.path)
            from contextd.indexers.text import window_chunks

            chunks = window_chunks(change.path, change.text, language_of(change.path), self.counter)
        seen: dict[str, int] = {}
        out = []
        for chunk in chunks:
            n = seen.get(chunk.hash, 0)
            seen[chunk.hash] = n + 1
            out.append((chunk_id(change.source, change.path, chunk.hash, n), chunk))
        return out

    def _flush(self, src: str, batch: _Batch, stats: IndexStats, progress: Progress | None) -> bool:
        """Write one batch to the catalog, then delete the vectors it replaced: False when
        the store could not be used for that (the source's next sweep deletes them)."""
        if not batch:
            return True
        in_step = True
        new: list[tuple[str, Chunk]] = []  # chunks with no vector in the store yet
        with self.write_lock:
            old: dict[str, tuple[int, int, bool]] = {}
            for path in (
                [p.change.path for p in batch.files] + [s.path for s in batch.skips] + batch.deletes
            ):
                old.update(self.catalog.file_chunk_spans(src, path))
            with self.catalog.transaction() as db:
                for p in batch.files:
                    c = p.change
                    state = FileState(c.size, c.mtime_ns, c.hash, "indexed")
                    # A chunk id names its source, path and content: one already stored at
                    # the same lines needs no new vector write. The rest join the backlog.
                    stored = {
                        cid
                        for cid, ch in p.chunks
                        if old.get(cid) == (ch.start_line, ch.end_line, True)
                    }
                    new += [(cid, ch) for cid, ch in p.chunks if cid not in stored]
                    self.catalog.put_file(
                        db,
                        src,
                        c.path,
                        state,
                        p.chunks[0][1].language if p.chunks else language_of(c.path),
                        chunks=p.chunks,
                        lexical=p.lexical,
                        embedded=stored,
                    )
                for skip in batch.skips:
                    state = FileState(skip.size, skip.mtime_ns, "", "skipped")
                    self.catalog.put_file(db, src, skip.path, state, reason=skip.reason)
                for touch in batch.touches:
                    self.catalog.touch_file(db, src, touch.path, touch.size, touch.mtime_ns)
                for path in batch.deletes:
                    self.catalog.delete_file(db, src, path)
            kept = {cid for p in batch.files for cid, _ in p.chunks}
            stale = sorted(cid for cid in old if cid not in kept)
            if stale:
                try:
                    self.store.delete(stale)
                except STORE_NOT_NOW:
                    in_step = False
            if in_step and new:
                stats.cached += self._store_cached(src, new)
        stats.changed += len(batch.files)
        stats.deleted += len(batch.deletes)
        if progress:
            progress(stats)
        return in_step

    def _store_cached(self, src: str, chunks: list[tuple[str, Chunk]]) -> int:
        """Store at once the new chunks whose text the cache holds a vector for: a branch
        switched back, a file restored. They cost no model time, and in the backlog they
        waited behind whatever slice the model was working on (80 s seen). Returns how
        many; a store that cannot take them now leaves them to the backlog."""
        model = self.embedder.model_id
        cache = self.catalog.cached_vectors(model, (ch.hash for _, ch in chunks), reuse=True)
        hits = [(cid, ch) for cid, ch in chunks if ch.hash in cache]
        if not hits:
            return 0
        try:
            self.store.upsert(
                [cid for cid, _ in hits],
                np.stack([cache[ch.hash] for _, ch in hits]),
                [metadata(src, ch) for _, ch in hits],
            )
        except STORE_NOT_NOW:
            return 0
        self.catalog.mark_embedded([cid for cid, _ in hits])
        return len(hits)

    # -- pass 2: the embedding backlog ----------------------------------------------------

    def embed_pending(
        self,
        stats: IndexStats | None = None,
        progress: Progress | None = None,
        pause: Callable[[], bool] | None = None,
        stopping: threading.Event | None = None,
    ) -> IndexStats:
        """Embed and store the backlog until it is empty (or `pause()` says to yield).

        The model works on one slice while the previous one is written, so cache and
        store writes cost no model time. Once `stopping` is set (the daemon stops), the
        slice in flight ends at its next batch and is dropped: it is embedded next time.
        Returns the counts of this call.
        """
        stats = stats or IndexStats("")
        stats.phase = "embedding"
        stats.pending = self.catalog.pending_count()
        if not stats.pending:
            return stats
        _ = self.store  # unusable (down, another chunker): no model work to throw away
        self.embedder.load()
        started = time.perf_counter()
        recent_ns = time.time_ns() - int(RECENT_S * 1e9)
        model = self.embedder.model_id
        flight: _Slice | None = None
        stop = _Either(threading.Event(), stopping)  # set on the way out of an error or Ctrl-C
        with ThreadPoolExecutor(1, thread_name_prefix="contextd-embed") as pool:
            try:
                while True:
                    nxt = None
                    if not (pause and pause()):
                        skip = {r.id for r in flight.rows} if flight else set()
                        rows = self.catalog.pending_chunks(EMBED_SLICE, recent_ns, skip)
                        if rows:
                            nxt = self._launch(pool, model, rows, flight, stop)
                    if flight is not None:
                        self._land(model, flight, stats)
                        stats.embed_seconds = time.perf_counter() - started
                        stats.pending = self.catalog.pending_count()
                        if progress:
                            progress(stats)
                    if nxt is None:
                        break
                    flight = nxt
            except EmbeddingStopped:
                if not (stopping and stopping.is_set()):
                    raise
                log.info("embedding stopped at a batch's end: the daemon is stopping")
            except BaseException:
                stop.set()  # the slice in flight ends at its next batch, not its last
                raise
        stats.embed_seconds = time.perf_counter() - started
        stats.pending = self.catalog.pending_count()
        if stats.embedded and not stats.pending:
            self._trim_cache()
        return stats

    def _trim_cache(self) -> None:
        """The cache just grew: keep it bounded (a count over it takes ~0.1 s for the
        standard library, so at most hourly)."""
        now = time.monotonic()
        if self._trimmed_at is not None and now - self._trimmed_at < CACHE_TRIM_EVERY_S:
            return
        self._trimmed_at = now
        trimmed = self.catalog.trim_cache(self.embedder.model_id)
        if trimmed:
            log.info("embedding cache: dropped %d vector(s) unused the longest", trimmed)

    def _launch(
        self,
        pool: ThreadPoolExecutor,
        model: str,
        rows: list[StoredChunk],
        flight: _Slice | None,
        stop: _Either,
    ) -> _Slice:
        cache = self.catalog.cached_vectors(model, (r.hash for r in rows), reuse=True)
        busy = set(flight.todo) if flight else set()  # its vectors land before ours
        todo: dict[str, str] = {}
        for r in rows:
            h = r.hash
            if h not in cache and h not in busy:
                todo.setdefault(h, r.chunk.embed_text)
        texts = list(todo.values())
        vectors = pool.submit(self.embedder.embed, texts, stop) if texts else None
        return _Slice(rows, list(todo), len(texts), vectors)

    def _land(self, model: str, flight: _Slice, stats: IndexStats) -> None:
        fresh: dict[str, np.ndarray] = {}
        if flight.vectors is not None:
            fresh = dict(zip(flight.todo, flight.vectors.result(), strict=True))
            self.catalog.put_vectors(model, fresh.items())
        stats.embedded += len(fresh)
        stats.cached += len(flight.rows) - len(fresh)
        with self.write_lock:
            # Rows may have changed or gone while the model worked: write what is left.
            rows = self.catalog.chunks([r.id for r in flight.rows], pending_only=True)
            if not rows:
                return
            vectors = self._vectors_for([r.chunk for r in rows], model, fresh)
            self.store.upsert(
                [r.id for r in rows],
                vectors,
                [metadata(r.source, r.chunk) for r in rows],
            )
            self.catalog.mark_embedded([r.id for r in rows])

    def _vectors_for(
        self, chunks: list[Chunk], model: str, known: dict[str, np.ndarray]
    ) -> np.ndarray:
        """A vector per chunk from `known`, the cache, or (rarely) the model right now."""
        need = {c.hash for c in chunks} - known.keys()
        if need:
            known = {**known, **self.catalog.cached_vectors(model, need)}
        missing = {c.hash: c.embed_text for c in chunks if c.hash not in known}
        if missing:
            made = self.embedder.embed(list(missing.values()))
            made_by_hash = dict(zip(missing, made, strict=True))
            self.catalog.put_vectors(model, made_by_hash.items())
            known = {**known, **made_by_hash}
        return np.stack([known[c.hash] for c in chunks])

    def sweep(self, source: str) -> tuple[int, int]:
        """Make the store agree with the catalog for one source: (orphans removed, lost).

        Lost chunks (marked embedded, absent from the store) go back to the backlog.
        """
        with self.write_lock:
            in_store = self.store.ids(source)
            orphans = sorted(in_store - self.catalog.chunk_ids(source))
            if orphans:
                self.store.delete(orphans)
            lost = self.catalog.embedded_ids(source) - in_store
            if lost:
                self.catalog.mark_unembedded(lost)
        if orphans or lost:
            log.info(
                "swept %s: %d orphan(s) removed, %d chunk(s) back in the embedding backlog",
                source,
                len(orphans),
                len(lost),
            )
        return len(orphans), len(lost)
