"""The vector store: one ChromaDB collection per embedding model.

Chroma holds vectors, the chunk text and the metadata search filters on. It is derived
data: every id in it has a chunk row in the catalog, and `Indexer.sweep` restores that
agreement after an interruption. Embeddings are always computed by contextd, never by
Chroma (no embedding function is configured, so Chroma never downloads a model).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contextd.errors import StoreError, StoreMismatch

log = logging.getLogger(__name__)


def collection_name(model_id: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", model_id).strip("-._")[-40:] or "model"
    digest = hashlib.blake2b(model_id.encode(), digest_size=4).hexdigest()
    return f"contextd-{slug}-{digest}"


@dataclass(frozen=True)
class StoredHit:
    id: str
    distance: float
    metadata: dict[str, Any]
    document: str


class VectorStore:
    def __init__(self, path: Path, model_id: str, dim: int, chunker_version: int) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.model_id = model_id
        self.dim = dim
        try:
            self.client = chromadb.PersistentClient(
                path=str(path),
                settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False),
            )
            self.collection = self.client.get_or_create_collection(
                collection_name(model_id),
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"model_id": model_id, "dim": dim, "chunker_version": chunker_version},
                embedding_function=None,
            )
        except Exception as exc:
            raise StoreError(
                f"The vector store at {path} cannot be opened ({exc}). "
                "Run `contextd reindex` to rebuild it from your files."
            ) from None
        meta = self.collection.metadata or {}
        if meta.get("dim") != dim or meta.get("chunker_version") != chunker_version:
            raise StoreMismatch(
                f"The index was built with model {meta.get('model_id')} (dim {meta.get('dim')}, "
                f"chunker v{meta.get('chunker_version')}); this contextd uses {model_id} "
                f"(dim {dim}, chunker v{chunker_version}). Run `contextd reindex`."
            )
        self.max_batch = max(1, int(self.client.get_max_batch_size()))

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]],
        documents: Sequence[str],
    ) -> None:
        for i in range(0, len(ids), self.max_batch):
            j = i + self.max_batch
            self.collection.upsert(
                ids=list(ids[i:j]),
                embeddings=vectors[i:j],
                metadatas=list(metadatas[i:j]),  # type: ignore[arg-type]
                documents=list(documents[i:j]),
            )

    def delete(self, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), self.max_batch):
            self.collection.delete(ids=list(ids[i : i + self.max_batch]))

    def entries(self, source: str) -> list[tuple[str, dict[str, Any]]]:
        """(id, metadata) of every vector of one source."""
        result = self.collection.get(where={"source": source}, include=["metadatas"])
        metas = result["metadatas"] or [{}] * len(result["ids"])
        return [(i, dict(m or {})) for i, m in zip(result["ids"], metas, strict=True)]

    def ids(self, source: str) -> set[str]:
        result = self.collection.get(where={"source": source}, include=[])
        return set(result["ids"])

    def count(self) -> int:
        return int(self.collection.count())

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None) -> list[StoredHit]:
        result = self.collection.query(
            query_embeddings=vector.reshape(1, -1),
            n_results=k,
            where=where,  # type: ignore[arg-type]
            include=["metadatas", "documents", "distances"],
        )
        ids = result["ids"][0]
        distances = (result["distances"] or [[]])[0]
        metas = (result["metadatas"] or [[]])[0]
        docs = (result["documents"] or [[]])[0]
        # A record deleted while the query ran can come back without metadata: it no
        # longer names a chunk, so it is not a result.
        return [
            StoredHit(i, float(d), dict(m), doc or "")
            for i, d, m, doc in zip(ids, distances, metas, docs, strict=True)
            if m
        ]
