"""Index a source: what changed -> chunks -> vectors (embedded once per text) -> store.

Write order, chosen so that any interruption leaves only what `sweep` repairs:
  1. new vectors go to the embedding cache (harmless on its own);
  2. the batch's chunks are upserted into the vector store (orphans if we stop here);
  3. one catalog transaction replaces the batch's file and chunk rows;
  4. chunk ids that no longer exist are deleted from the vector store.
The source is marked dirty before step 2 and clean when the run finishes. A dirty source
is swept first on its next run: store ids without a catalog row are deleted, catalog rows
missing from the store are written back from the cache. Re-running converges.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field

import numpy as np

from contextd.catalog import Catalog, SourceRow
from contextd.connectors import open_source, scan_changes
from contextd.connectors.git import GitSource
from contextd.embedder import Embedder
from contextd.indexers import ChunkerRegistry, language_of
from contextd.records import Change, ChangeKind, Chunk, FileState, Skip, Touch
from contextd.settings import Settings
from contextd.store import VectorStore

log = logging.getLogger(__name__)

BATCH_CHUNKS = 256  # chunks to gather before embedding and writing
BATCH_FILES = 200
EMBED_SLICE = 64  # report progress after each slice of this many texts


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
    seconds: float = 0.0
    embed_seconds: float = 0.0
    total_files: int = 0  # candidates listed, for progress

    @property
    def embed_rate(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("total_files")
        out["seconds"] = round(self.seconds, 3)
        out["embed_seconds"] = round(self.embed_seconds, 3)
        out["embed_rate"] = round(self.embed_rate, 1)
        return out


Progress = Callable[[IndexStats], None]


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


@dataclass
class _Batch:
    files: list[tuple[Change, list[tuple[str, Chunk]]]] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    @property
    def n_chunks(self) -> int:
        return sum(len(c) for _, c in self.files)

    def __bool__(self) -> bool:
        return bool(self.files or self.skips or self.touches or self.deletes)


class Indexer:
    def __init__(
        self, settings: Settings, catalog: Catalog, store: VectorStore, embedder: Embedder
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.embedder = embedder
        self.chunkers = ChunkerRegistry(embedder.token_counter(), settings.parse_timeout_s)

    def index(
        self,
        row: SourceRow,
        progress: Progress | None = None,
        scope: Collection[str] | None = None,
        commit: str | None = None,
    ) -> IndexStats:
        """Bring a source (or, with `scope`, those paths of it) in line with the disk.

        A full run records the HEAD it started from; a scoped run records `commit` when
        given (a git event whose scope is everything changed since the recorded commit).
        """
        started = time.perf_counter()
        stats = IndexStats(row.name)
        source = open_source(row.name, row.root, row.kind)
        if scope is None and isinstance(source, GitSource):
            commit = source.head()
        if row.dirty:
            log.info("source %s was interrupted; sweeping the store", row.name)
            self.sweep(row.name)
        self.catalog.mark_source(row.name, dirty=True)
        scan = scan_changes(
            source, self.catalog.file_states(row.name), self.settings.max_file_bytes, scope
        )
        stats.total_files = len(scan.paths)
        batch = _Batch()
        for event in scan:
            if isinstance(event, Change) and event.kind is ChangeKind.DELETED:
                batch.deletes.append(event.path)
            else:
                stats.scanned += 1
                if isinstance(event, Change):
                    batch.files.append((event, self._chunk(event)))
                elif isinstance(event, Skip):
                    batch.skips.append(event)
                elif isinstance(event, Touch):
                    batch.touches.append(event)
            if batch.n_chunks >= BATCH_CHUNKS or len(batch.files) >= BATCH_FILES:
                self._flush(row.name, batch, stats, progress)
                batch = _Batch()
            elif progress and stats.scanned % 50 == 0:
                progress(stats)
        self._flush(row.name, batch, stats, progress)
        self.catalog.mark_source(
            row.name, dirty=False, indexed_commit=commit, reconciled=scope is None
        )
        counts = self.catalog.counts(row.name)
        stats.files, stats.chunks, stats.skipped = (
            counts["files"],
            counts["chunks"],
            counts["skipped"],
        )
        stats.seconds = time.perf_counter() - started
        if progress:
            progress(stats)
        return stats

    def _chunk(self, change: Change) -> list[tuple[str, Chunk]]:
        try:
            chunks = self.chunkers.chunk(change.path, change.text)
        except Exception:  # a chunker bug must cost one file, not the run
            log.exception("chunking %s failed; indexing it as plain windows", change.path)
            from contextd.indexers.text import window_chunks

            chunks = window_chunks(
                change.path, change.text, language_of(change.path), self.chunkers.counter
            )
        seen: dict[str, int] = {}
        out = []
        for chunk in chunks:
            n = seen.get(chunk.hash, 0)
            seen[chunk.hash] = n + 1
            out.append((chunk_id(change.source, change.path, chunk.hash, n), chunk))
        return out

    def _vectors(
        self, chunks: list[Chunk], stats: IndexStats, progress: Progress | None
    ) -> np.ndarray:
        """One vector per chunk, embedding only texts the cache has never seen."""
        model = self.embedder.model_id
        cache = self.catalog.cached_vectors(model, (c.hash for c in chunks))
        todo: dict[str, str] = {}
        for c in chunks:
            if c.hash not in cache:
                todo.setdefault(c.hash, c.embed_text)
        stats.cached += sum(1 for c in chunks if c.hash in cache)
        hashes = list(todo)
        if hashes:
            self.embedder.load()
        for i in range(0, len(hashes), EMBED_SLICE):
            part = hashes[i : i + EMBED_SLICE]
            t0 = time.perf_counter()
            vectors = self.embedder.embed([todo[h] for h in part])
            stats.embed_seconds += time.perf_counter() - t0
            self.catalog.put_vectors(model, zip(part, vectors, strict=True))
            cache.update(zip(part, vectors, strict=True))
            stats.embedded += len(part)
            if progress:
                progress(stats)
        return np.stack([cache[c.hash] for c in chunks]) if chunks else np.zeros((0, 1))

    def _flush(self, src: str, batch: _Batch, stats: IndexStats, progress: Progress | None) -> None:
        if not batch:
            return
        pairs = [p for _, chunks in batch.files for p in chunks]
        old: dict[str, tuple[int, int]] = {}
        for path in (
            [c.path for c, _ in batch.files] + [s.path for s in batch.skips] + batch.deletes
        ):
            old.update(self.catalog.file_chunk_spans(src, path))
        # A chunk id names its source, path and content: one already stored at the same
        # lines needs no write. Only new and moved chunks reach the vector store.
        fresh = [(cid, c) for cid, c in pairs if old.get(cid) != (c.start_line, c.end_line)]
        if fresh:
            vectors = self._vectors([c for _, c in fresh], stats, progress)
            self.store.upsert(
                [cid for cid, _ in fresh],
                vectors,
                [metadata(src, c) for _, c in fresh],
                [c.text for _, c in fresh],
            )
        with self.catalog.transaction() as db:
            for change, chunks in batch.files:
                state = FileState(change.size, change.mtime_ns, change.hash, "indexed")
                self.catalog.put_file(
                    db, src, change.path, state, language_of(change.path), chunks=chunks
                )
            for skip in batch.skips:
                state = FileState(skip.size, skip.mtime_ns, "", "skipped")
                self.catalog.put_file(db, src, skip.path, state, reason=skip.reason)
            for touch in batch.touches:
                self.catalog.touch_file(db, src, touch.path, touch.size, touch.mtime_ns)
            for path in batch.deletes:
                self.catalog.delete_file(db, src, path)
        stale = sorted(set(old) - {cid for cid, _ in pairs})
        if stale:
            self.store.delete(stale)
        stats.changed += len(batch.files)
        stats.deleted += len(batch.deletes)
        if progress:
            progress(stats)

    def sweep(self, source: str) -> tuple[int, int]:
        """Make the store agree with the catalog for one source: (orphans removed, restored)."""
        in_store = self.store.ids(source)
        in_catalog = self.catalog.chunk_ids(source)
        orphans = sorted(in_store - in_catalog)
        if orphans:
            self.store.delete(orphans)
        missing = self.catalog.chunks(in_catalog - in_store)
        if missing:
            chunks = [m.chunk for m in missing]
            vectors = self._vectors(chunks, IndexStats(source), None)
            self.store.upsert(
                [m.id for m in missing],
                vectors,
                [metadata(source, c) for c in chunks],
                [c.text for c in chunks],
            )
        if orphans or missing:
            log.info(
                "swept %s: %d orphan(s) removed, %d chunk(s) restored",
                source,
                len(orphans),
                len(missing),
            )
        return len(orphans), len(missing)
