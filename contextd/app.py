"""The pieces of one running contextd, opened lazily: catalog, embedder, store, indexer.

Commands that only read the catalog (sources, status) never load the model or Chroma.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
import uuid
from collections.abc import Callable, Collection
from functools import cached_property
from pathlib import Path

from contextd import store as store_module
from contextd.catalog import Catalog, SourceRow
from contextd.confidence import Calibrations
from contextd.embedder import SentenceTransformerEmbedder
from contextd.errors import STORE_NOT_NOW, StoreError, StoreMismatch, StoreUnavailable
from contextd.home import make_home
from contextd.indexers import CHUNKER_VERSION
from contextd.pipeline import Indexer, IndexStats, Progress
from contextd.settings import Settings
from contextd.store import Owner, VectorStore

log = logging.getLogger(__name__)

MODEL_KEY = "model_id"
CHUNKER_KEY = "chunker_version"  # the chunker that cut the catalog's chunks, once known
STORE_KEY = "store"  # where the catalog's chunks were written: "embedded" or "URL#namespace"
OWNER_KEY = "store_owner"  # this catalog's id, stamped on its collections on a server


STORE_RETRY_S = 10.0  # a server that could not be reached is asked again this much later


def store_identity(settings: Settings) -> str:
    return "embedded" if settings.store is None else f"{settings.store}#{settings.namespace}"


class App:
    def __init__(self, settings: Settings, catalog_timeout_s: float = 5.0) -> None:
        """`catalog_timeout_s`: how long to wait for a catalog another writer holds (the
        daemon's threads take turns; a command in a terminal should give up sooner)."""
        self.settings = settings
        self.store_repair: str | None = None  # what opening the store had to rebuild
        # Told when the store lost its vectors or answers again: the daemon reconciles.
        self.on_store_change: Callable[[], None] | None = None
        self.store_down: tuple[float, str] | None = None  # (when, why) it could not be opened
        self.store_mismatch: str | None = None  # why the store needs `contextd reindex`
        make_home(settings.home)
        self.catalog = Catalog(settings.catalog_path, timeout_s=catalog_timeout_s)

    @cached_property
    def embedder(self) -> SentenceTransformerEmbedder:
        return SentenceTransformerEmbedder(self.settings)

    @cached_property
    def store(self) -> VectorStore:
        """The vector store, opened at first use. A server that cannot be reached is not
        asked again for STORE_RETRY_S (a search then answers from the keyword index at
        once); when it answers again, `on_store_change` is told."""
        down = self.store_down
        if down is not None and time.monotonic() - down[0] < STORE_RETRY_S:
            raise StoreUnavailable(down[1])
        try:
            store = self._open_store()
        except StoreUnavailable as exc:
            self.store_down = (time.monotonic(), str(exc))
            raise
        except StoreMismatch as exc:  # built by another model or chunker: a reindex's work
            self.store_mismatch = str(exc)
            raise
        self.store_mismatch = None
        if down is not None:
            self.store_down = None
            log.info("the vector store answers again: %s", store.where)
            if self.on_store_change is not None:
                self.on_store_change()
        return store

    def _open_store(self) -> VectorStore:
        model_id = self.embedder.model_id
        if self.catalog.get_meta(MODEL_KEY) is None:
            self.catalog.set_meta(MODEL_KEY, model_id)
        mismatch = self._model_mismatch()
        if mismatch:
            raise StoreMismatch(mismatch)
        owner = self.owner if self.settings.store is not None else None
        store = VectorStore(
            self.settings, model_id, self.embedder.dim, CHUNKER_VERSION, owner, self._store_gone
        )
        if self.settings.store is None:
            self._check_store(store)
        self._follow_store(store)
        if self.catalog.get_meta(CHUNKER_KEY) != str(CHUNKER_VERSION):
            self.catalog.set_meta(CHUNKER_KEY, str(CHUNKER_VERSION))
        return store

    def reindex_needed(self) -> str | None:
        """Why the index must be rebuilt before its vectors can be used (another model, or
        chunks cut by an earlier contextd), as far as the catalog knows without the store."""
        if self.store_mismatch:
            return self.store_mismatch
        mismatch = self._model_mismatch()
        if mismatch:
            return mismatch
        cut_by = self.catalog.get_meta(CHUNKER_KEY)
        if cut_by is not None and cut_by != str(CHUNKER_VERSION):
            return (
                f"The index was cut into chunks by an earlier contextd (chunker v{cut_by}; "
                f"this one is v{CHUNKER_VERSION}). Run `contextd reindex`: vectors of "
                "unchanged text come from the embedding cache."
            )
        return None

    def _model_mismatch(self) -> str | None:
        built_with = self.catalog.get_meta(MODEL_KEY)
        if built_with is None or built_with == self.embedder.model_id:
            return None
        return (
            f"The index was built with model {built_with}; the configured model is "
            f"{self.embedder.model_id}. Run `contextd reindex` to rebuild it, or set "
            "CONTEXTD_MODEL back."
        )

    def _store_gone(self) -> None:
        """The store's collection vanished while in use: open it again at its next use
        (which finds it lacking, so the next index run sweeps the vectors back in from the
        embedding cache) and tell the daemon, which runs that index now."""
        self.__dict__.pop("store", None)
        if self.on_store_change is not None:
            self.on_store_change()

    def _check_store(self, store: VectorStore) -> None:
        """Rebuild a damaged or vanished embedded collection from the catalog.

        A collection that cannot be read back (truncated or zeroed HNSW files) is dropped
        and made again; an empty one while the catalog has embedded chunks was deleted.
        Either way every chunk goes back to the embedding backlog, whose vectors come from
        the embedding cache (no model work for text seen before)."""
        started = time.perf_counter()
        try:
            store.probe()
        except Exception as exc:  # Chroma's errors for a damaged segment are not typed
            reason = f"its collection could not be read ({exc})"
            log.warning("the vector store is damaged: %s; rebuilding it", reason)
            store.recreate()
        else:
            embedded = self.catalog.chunk_count() - self.catalog.pending_count()
            same_store = (self.catalog.get_meta(STORE_KEY) or "embedded") == "embedded"
            if not (embedded and same_store and store.count() == 0):
                return
            reason = "its collection was missing or empty"
        chunks = self.catalog.mark_all_unembedded()
        self.store_repair = (
            f"The vector store was rebuilt at {time.strftime('%Y-%m-%d %H:%M:%S')}: {reason}. "
            f"{chunks} chunks are back in the embedding backlog and are rewritten from the "
            "embedding cache (the daemon does it; without one, run `contextd index`)."
        )
        log.warning("%s (%.2fs)", self.store_repair, time.perf_counter() - started)

    @cached_property
    def owner(self) -> Owner:
        """This catalog's id on a shared server: a namespace belongs to one catalog."""
        owner_id = self.catalog.get_meta(OWNER_KEY)
        if owner_id is None:
            owner_id = uuid.uuid4().hex
            self.catalog.set_meta(OWNER_KEY, owner_id)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "?"
        return Owner(owner_id, f"{user}@{socket.gethostname()}:{self.settings.home}")

    def _follow_store(self, store: VectorStore) -> None:
        """When the store moved (embedded -> server, another server or namespace) or lost
        its vectors, mark every source interrupted: its next index run sweeps, which puts
        the chunks the store lacks back in the embedding backlog (served from the cache)."""
        here = store_identity(self.settings)
        before = self.catalog.get_meta(STORE_KEY) or "embedded"
        chunks = self.catalog.chunk_count() - self.catalog.pending_count()  # embedded ones
        if chunks and (before != here or store.count() < chunks):
            for row in self.catalog.sources():
                self.catalog.mark_source(row.name, dirty=True)
            why = f"they were written to {before}" if before != here else "it lacks some"
            log.warning(
                "the catalog's %d embedded chunks are not in %s (%s); every source is swept "
                "into it at its next index run",
                chunks,
                store.where,
                why,
            )
        if self.catalog.get_meta(STORE_KEY) != here:
            self.catalog.set_meta(STORE_KEY, here)

    @cached_property
    def calibrations(self) -> Calibrations:
        return Calibrations(self.settings.home, self.embedder.model_id)

    @cached_property
    def indexer(self) -> Indexer:
        return Indexer(self.settings, self.catalog, lambda: self.store, self.embedder)

    def index(
        self,
        row: SourceRow,
        progress: Progress | None = None,
        scope: Collection[str] | None = None,
        commit: str | None = None,
        embed: bool = True,
    ) -> IndexStats:
        """Pass 1 (catalog and lexical index), then, unless `embed` is False (the daemon
        embeds in the background), pass 2 until nothing is pending."""
        indexer = self.indexer
        try:
            _ = self.store  # opening it may mark the row dirty (a store switch)
        except STORE_NOT_NOW:
            pass  # pass 1 needs only the catalog; the store is swept when it answers
        stats = indexer.index(self.catalog.source(row.name), progress, scope, commit)
        if embed and stats.pending:
            started = time.perf_counter()
            self.indexer.embed_pending(stats, progress)
            stats.pending = self.catalog.counts(row.name)["pending"]
            stats.seconds += time.perf_counter() - started
        stats.phase = "done"
        return stats

    def forget(self, name: str) -> int:
        """Remove a source's vectors from the store, then the source from the catalog: a
        store that cannot be reached fails the whole (forgotten first, the source's vectors
        would stay on the server with nothing left to find them)."""
        self.catalog.source(name)  # "No source named ..." with the next command
        ids = self.catalog.chunk_ids(name)
        if not ids:
            self.catalog.remove_source(name)
            return 0
        try:
            store = self.store
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            # A store `reindex` drops anyway (another model, ...): the catalog is enough.
            log.warning("removing %s from the catalog only: %s", name, exc)
            self.catalog.remove_source(name)
            return len(ids)
        with self.indexer.write_lock:  # no embedding lands this source's vectors meanwhile
            store.delete(sorted(ids | store.ids(name)))  # and any orphans
            self.catalog.remove_source(name)
            if store.path is not None and not store.count():
                try:  # Chroma's index keeps deleted vectors' space; a new one does not
                    store.recreate()
                except StoreError as exc:  # the source is gone all the same
                    log.warning("the emptied vector store was not made anew: %s", exc)
        return len(ids)

    def reset_index(self, take_over: bool = False) -> None:
        """Drop every chunk and vector (the embedding cache stays) before a full rebuild.

        On a server only this namespace's collections go; one another catalog owns only
        with `take_over` (how a namespace is taken over); other namespaces never."""
        owner = self.owner.id if self.settings.store is not None else None
        old = self.__dict__.pop("store", None)
        if old is not None:
            old.close()
        dropped = store_module.drop_collections(self.settings, owner, take_over)
        log.info("reindex: dropped collections %s", dropped)
        self.catalog.clear_chunks()
        self.catalog.set_meta(MODEL_KEY, self.embedder.model_id)
        self.catalog.set_meta(CHUNKER_KEY, str(CHUNKER_VERSION))
        self.catalog.set_meta(STORE_KEY, store_identity(self.settings))

    def close(self) -> None:
        store = self.__dict__.get("store")
        if store is not None:
            store.close()
        self.catalog.close()


def resolve_root(path: Path) -> Path:
    return path.expanduser().resolve()
