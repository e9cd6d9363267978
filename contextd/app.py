"""The pieces of one running contextd, opened lazily: catalog, embedder, store, indexer.

Commands that only read the catalog (sources, status) never load the model or Chroma.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from functools import cached_property
from pathlib import Path

from contextd.catalog import Catalog, SourceRow
from contextd.confidence import Calibrations
from contextd.embedder import SentenceTransformerEmbedder
from contextd.errors import StoreMismatch
from contextd.indexers import CHUNKER_VERSION
from contextd.pipeline import Indexer, IndexStats, Progress
from contextd.settings import Settings
from contextd.store import VectorStore

MODEL_KEY = "model_id"


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.catalog = Catalog(settings.catalog_path)

    @cached_property
    def embedder(self) -> SentenceTransformerEmbedder:
        return SentenceTransformerEmbedder(self.settings)

    @cached_property
    def store(self) -> VectorStore:
        model_id = self.embedder.model_id
        built_with = self.catalog.get_meta(MODEL_KEY)
        if built_with is None:
            self.catalog.set_meta(MODEL_KEY, model_id)
        elif built_with != model_id:
            raise StoreMismatch(
                f"The index was built with model {built_with}; the configured model is "
                f"{model_id}. Run `contextd reindex` to rebuild it, or set CONTEXTD_MODEL back."
            )
        return VectorStore(self.settings.chroma_path, model_id, self.embedder.dim, CHUNKER_VERSION)

    @cached_property
    def calibrations(self) -> Calibrations:
        return Calibrations(self.settings.home, self.embedder.model_id)

    @cached_property
    def indexer(self) -> Indexer:
        return Indexer(self.settings, self.catalog, self.store, self.embedder)

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
        stats = self.indexer.index(row, progress, scope, commit)
        if embed and stats.pending:
            started = time.perf_counter()
            self.indexer.embed_pending(stats, progress)
            stats.pending = self.catalog.counts(row.name)["pending"]
            stats.seconds += time.perf_counter() - started
        stats.phase = "done"
        return stats

    def forget(self, name: str) -> int:
        """Remove a source from the catalog and its vectors from the store."""
        ids = self.catalog.remove_source(name)
        if ids:
            self.store.delete(ids)
        return len(ids)

    def reset_index(self) -> None:
        """Drop every chunk and vector (the embedding cache stays) before a full rebuild."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        client = chromadb.PersistentClient(
            path=str(self.settings.chroma_path),
            settings=ChromaSettings(anonymized_telemetry=False),
        )
        for col in client.list_collections():
            if col.name.startswith("contextd-"):
                client.delete_collection(col.name)
        self.catalog.clear_chunks()
        self.catalog.set_meta(MODEL_KEY, self.embedder.model_id)
        self.__dict__.pop("store", None)
        self.__dict__.pop("indexer", None)

    def close(self) -> None:
        self.catalog.close()


def resolve_root(path: Path) -> Path:
    return path.expanduser().resolve()
