"""The vector store: one ChromaDB collection per embedding model (and namespace).

Chroma holds vectors, the chunk text and the metadata search filters on. It is derived
data: every id in it has a chunk row in the catalog, and `Indexer.sweep` restores that
agreement after an interruption. Embeddings are always computed by contextd, never by
Chroma (no embedding function is configured, so Chroma never downloads a model).

The store is embedded in the data dir, or a Chroma server shared by several contextd
daemons (`CONTEXTD_STORE`, see `remote.py`). On a server each daemon has collections of
its own, named for its namespace and stamped with its owner (a random id kept in its
catalog). Chunk ids are derived from (source, path, text), so two people indexing the
same repository under the same source name produce the same ids: one shared collection
would let one daemon's sweep delete the other's vectors. Separate collections cannot,
and a namespace already owned by another catalog is refused rather than shared.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contextd import remote
from contextd.errors import (
    ChunkerMismatch,
    DiskFull,
    NamespaceTaken,
    StoreError,
    StoreGone,
    StoreMismatch,
    StoreUnavailable,
)
from contextd.health import free_bytes, is_disk_full
from contextd.settings import Settings

log = logging.getLogger(__name__)

STORE_MIN_FREE = 16 << 20  # the embedded store is not written with less free than this
REMOTE_MAX_BATCH = 1000  # records per request to a server: a few MB of JSON, not 25
PAGE = 5000  # records per read of one source's ids and metadata
# Candidates HNSW explores per query (Chroma's default is 100). On the standard library's
# 75,862 chunks, the 50 nearest it returned held 87-89% of the true 50 nearest at 100 and
# 98% at 400, for about 1 ms more per query (bench/hnsw_recall.py).
EF_SEARCH = 400
HNSW = {"space": "cosine", "ef_search": EF_SEARCH}


def collection_name(model_id: str, namespace: str | None = None) -> str:
    key = model_id if namespace is None else f"{namespace}\0{model_id}"
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", model_id).strip("-._")[-40:] or "model"
    digest = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
    prefix = "contextd-" if namespace is None else f"contextd-{namespace}-"
    return f"{prefix}{slug}-{digest}"


@contextmanager
def disk_full_named(where: str) -> Iterator[None]:
    """Chroma's own "database or disk is full" (the embedded store), as a DiskFull that
    says what to do; contextd's own errors pass as they are."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        said = str(exc).strip().splitlines()
        raise DiskFull(
            f"The disk is full: {where} could not be written "
            f"({said[0][:200] if said else exc!r}). Free some space there; contextd picks "
            "up where it stopped (`contextd status` shows it)."
        ) from None


@dataclass(frozen=True)
class Owner:
    """The catalog a namespace's collections belong to: a random id, and who that is."""

    id: str
    label: str


def open_client(settings: Settings) -> Any:
    """The embedded PersistentClient in the data dir, or a client of the Chroma server."""
    if settings.store is not None:
        return remote.connect(settings)
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    with disk_full_named(f"the vector store at {settings.chroma_path}"):  # opening writes
        return chromadb.PersistentClient(
            path=str(settings.chroma_path),
            settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False),
        )


def sweep_segment_folders(chroma_path: Path) -> None:
    """Delete the HNSW folders of collections Chroma has deleted.

    Chroma 1.x drops a deleted collection's rows but leaves its segment folder on disk
    (chroma-core/chroma#5259), so every `reindex` or model switch left the old index
    behind: 387 MB over three reindexes of the standard library. A folder is swept only
    when its name is a segment id that Chroma's own table no longer lists (Chroma writes
    the row before the folder); anything else, or a table that cannot be read, is left
    alone. The embedded store is used by the process holding the data dir's lock alone."""
    db_path = chroma_path / "chroma.sqlite3"
    if not db_path.is_file():
        return
    try:
        db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            listed = {str(row[0]) for row in db.execute("SELECT id FROM segments")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.warning("vector store: segment folders not checked (%s)", exc)
        return
    for folder in chroma_path.iterdir():
        try:
            is_segment = str(uuid.UUID(folder.name)) == folder.name and folder.is_dir()
            if not is_segment or folder.name in listed or folder.is_symlink():
                continue
            shutil.rmtree(folder)
        except (ValueError, OSError):
            continue
        log.info("vector store: removed %s, a deleted collection's index", folder)


def drop_collections(
    settings: Settings, owner: str | None = None, take_over: bool = False
) -> list[str]:
    """Delete this contextd's collections (every model): all of contextd's in the embedded
    store; on a server only those of its namespace. One that another catalog than `owner`
    created is another person's live index: refused unless `take_over`, before any goes."""
    client = open_client(settings)
    dropped = []
    try:
        if settings.store is None:
            mine = [c for c in client.list_collections() if c.name.startswith("contextd-")]
        else:
            mine = [
                c
                for c in client.list_collections()
                if (c.metadata or {}).get("namespace") == settings.namespace
            ]
        theirs = [c for c in mine if settings.store and (c.metadata or {}).get("owner") != owner]
        if theirs and not take_over:
            label = (theirs[0].metadata or {}).get("owner_label", "unknown")
            raise NamespaceTaken(
                f"Namespace '{settings.namespace}' on {settings.store} holds the index of "
                f"another contextd ({label}), which a reindex would delete. If that index "
                "was yours (a data dir you have since replaced), run `contextd reindex "
                "--take-over`; if not, set CONTEXTD_STORE_NAMESPACE to a name of your own."
            )
        where = settings.store or f"the vector store at {settings.chroma_path}"
        for col in mine:
            with disk_full_named(where):
                client.delete_collection(col.name)
            dropped.append(col.name)
    finally:
        if settings.store is not None:
            client.close()
    if settings.store is None:
        sweep_segment_folders(settings.chroma_path)
    return dropped


class VectorStore:
    def __init__(
        self,
        settings: Settings,
        model_id: str,
        dim: int,
        chunker_version: int,
        owner: Owner | None = None,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        self.on_gone = on_gone  # told when the collection vanishes under us
        self.model_id = model_id
        self.dim = dim
        self.url = settings.store
        self.path = settings.chroma_path if settings.store is None else None
        self.namespace = settings.namespace if self.url else None
        metadata: dict[str, Any] = {
            "model_id": model_id,
            "dim": dim,
            "chunker_version": chunker_version,
        }
        if self.url is not None:
            if owner is None:
                raise ValueError("a store on a server needs an owner")
            metadata |= {
                "namespace": self.namespace,
                "owner": owner.id,
                "owner_label": owner.label,
                "created_at": time.time(),
            }
            self.client = open_client(settings)  # StoreUnavailable, ConfigError: clear as is
            with self._calls():
                self.collection = self._get_or_create(
                    collection_name(model_id, self.namespace), metadata
                )
        else:
            try:
                with disk_full_named(f"the vector store at {settings.chroma_path}"):
                    self.client = open_client(settings)
                    self.collection = self._get_or_create(collection_name(model_id), metadata)
                sweep_segment_folders(settings.chroma_path)  # left by an earlier contextd
            except DiskFull:
                raise
            except Exception as exc:
                raise StoreError(
                    f"The vector store at {settings.chroma_path} cannot be opened ({exc}). "
                    "Run `contextd reindex` to rebuild it from your files."
                ) from None
        meta = self.collection.metadata or {}
        if owner is not None and self.url is not None and meta.get("owner") != owner.id:
            raise NamespaceTaken(
                f"Namespace '{self.namespace}' on {self.url} holds the index of another "
                f"contextd ({meta.get('owner_label', 'unknown')}). Set "
                "CONTEXTD_STORE_NAMESPACE to a name of your own; or, if that index was yours "
                "(a data dir you have since replaced), run `contextd reindex --take-over`."
            )
        if meta.get("dim") != dim or meta.get("chunker_version") != chunker_version:
            same_model = meta.get("dim") == dim and meta.get("model_id") == model_id
            raise (ChunkerMismatch if same_model else StoreMismatch)(
                f"The index was built with model {meta.get('model_id')} (dim {meta.get('dim')}, "
                f"chunker v{meta.get('chunker_version')}); this contextd uses {model_id} "
                f"(dim {dim}, chunker v{chunker_version}). Run `contextd reindex`."
            )
        self._widen_search()
        with self._calls():
            self.max_batch = max(1, int(self.client.get_max_batch_size()))
        if self.url is not None:
            self.max_batch = min(self.max_batch, REMOTE_MAX_BATCH)

    def _widen_search(self) -> None:
        """A collection made by an earlier contextd searches with Chroma's default ef:
        raise it. Chroma reads it when it loads the collection, at its first query."""
        hnsw = (self.collection.configuration or {}).get("hnsw") or {}
        ef = hnsw.get("ef_search")
        if not isinstance(ef, int) or ef >= EF_SEARCH:
            return
        try:
            with self._calls():
                self.collection.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})
        except Exception as exc:  # searching still works, only less thoroughly
            log.warning(
                "could not raise the store's ef_search from %d to %d: %s", ef, EF_SEARCH, exc
            )
        else:
            log.info("store ef_search raised from %d to %d", ef, EF_SEARCH)

    @property
    def where(self) -> str:
        """Where the vectors are, for messages."""
        if self.url is None:
            return "the embedded store"
        return f"{self.url} (namespace {self.namespace})"

    @contextmanager
    def _calls(self) -> Iterator[None]:
        """Failures in the middle of work, as errors that say what to do."""
        from chromadb.errors import NotFoundError

        try:
            with self._server_calls():
                yield
        except NotFoundError:
            if self.on_gone:
                self.on_gone()
            raise StoreGone(
                f"The vector collection in {self.where} is gone (its data was wiped or "
                "restored, or another contextd took the namespace over). contextd opens it "
                "again and writes the vectors back from the embedding cache: a running "
                "daemon does it now; without one, run `contextd index`."
            ) from None

    @contextmanager
    def _server_calls(self) -> Iterator[None]:
        if self.url is None:
            with disk_full_named(self.where):  # Chroma's own error for a full disk
                yield
            return
        import httpx
        from chromadb.errors import ChromaAuthError

        try:
            yield
        except httpx.TransportError as exc:
            raise remote.unreachable(self.url, exc) from None
        except ChromaAuthError:
            raise StoreUnavailable(
                f"The Chroma server at {self.url} refused contextd's token. Check "
                "CONTEXTD_STORE_TOKEN (or the token file) against the one the proxy expects, "
                "then restart the daemon (it reads the token when it starts)."
            ) from None
        except Exception as exc:
            if type(exc) is not Exception:  # Chroma's typed errors say what they are
                raise
            # What Chroma's client raises for an answer that is not Chroma's JSON: a proxy's
            # own page (401 with an empty body, 502 when `chroma run` is down behind it).
            said = f": {str(exc).strip()[:200]}" if str(exc).strip() else " with no message"
            raise StoreUnavailable(
                f"The Chroma server at {self.url} answered with an error{said}. A proxy in "
                "front of it may have refused the token or lost the server behind it. Check "
                f"with `curl -H 'Authorization: Bearer TOKEN' {self.url}/api/v2/heartbeat`; "
                "after changing the token, restart the daemon."
            ) from None

    def close(self) -> None:
        if self.url is not None:
            self.client.close()

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """Vectors and their metadata, never the chunk text: search reads text from the
        catalog, so a copy here would only cost disk (888 -> 657 MiB for the stdlib) and,
        in team mode, send the code over the network."""
        self._room_to_write()
        with self._calls():
            for i in range(0, len(ids), self.max_batch):
                j = i + self.max_batch
                self.collection.upsert(
                    ids=list(ids[i:j]),
                    embeddings=vectors[i:j],
                    metadatas=list(metadatas[i:j]),  # type: ignore[arg-type]
                )

    def _room_to_write(self) -> None:
        """The embedded store is not written with its disk nearly full: Chroma then hung
        in a retry loop holding the GIL (no search, no `stop`, even after space came back)."""
        if self.url is not None or self.path is None:
            return
        free = free_bytes(self.path)
        if free is not None and free < STORE_MIN_FREE:
            raise DiskFull(
                f"The disk is full for the vector store at {self.path}: {free // 2**20} MiB "
                f"free, and contextd writes no vectors with less than "
                f"{STORE_MIN_FREE // 2**20} MiB. Free some space there; contextd picks up "
                "where it stopped (`contextd status` shows it)."
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._room_to_write()
        with self._calls():
            for i in range(0, len(ids), self.max_batch):
                self.collection.delete(ids=list(ids[i : i + self.max_batch]))

    def entries(self, source: str) -> list[tuple[str, dict[str, Any]]]:
        """(id, metadata) of every vector of one source."""
        out: list[tuple[str, dict[str, Any]]] = []
        for page in self._pages({"source": source}, ["metadatas"]):
            metas = page["metadatas"] or [{}] * len(page["ids"])
            out += [(i, dict(m or {})) for i, m in zip(page["ids"], metas, strict=True)]
        return out

    def ids(self, source: str) -> set[str]:
        return {i for page in self._pages({"source": source}, []) for i in page["ids"]}

    def _pages(self, where: dict[str, Any] | None, include: list[str]) -> Iterator[Any]:
        """Records a page at a time: Chroma reads a page's metadata with one SQL variable
        per record, and SQLite allows 32,766 (a source can have more)."""
        offset = 0
        while True:
            with self._calls():
                page = self.collection.get(
                    where=where,  # type: ignore[arg-type]
                    include=include,  # type: ignore[arg-type]
                    limit=PAGE,
                    offset=offset,
                )
            yield page
            if len(page["ids"]) < PAGE:
                return
            offset += PAGE

    def leftovers(self, sources: Collection[str]) -> tuple[dict[str, list[str]], dict[str, int]]:
        """What this contextd put in the store and no longer uses: the ids of vectors
        whose source the catalog does not name (by source), and its other collections
        (name -> vectors), left by another model or chunker version."""
        where = {"source": {"$nin": sorted(sources)}} if sources else None
        stray: dict[str, list[str]] = {}
        for page in self._pages(where, ["metadatas"]):
            metas = page["metadatas"] or [{}] * len(page["ids"])
            for i, m in zip(page["ids"], metas, strict=True):
                stray.setdefault(str((m or {}).get("source", "?")), []).append(i)
        mine = self.collection.metadata or {}
        others = {}
        with self._calls():
            for col in self.client.list_collections():
                meta = col.metadata or {}
                if col.name == self.collection.name:
                    continue
                if self.url is None and not col.name.startswith("contextd-"):
                    continue
                ours = (meta.get("namespace"), meta.get("owner"))
                if self.url is not None and ours != (self.namespace, mine.get("owner")):
                    continue
                others[col.name] = int(col.count())
        return stray, others

    def drop_collection(self, name: str) -> None:
        """Delete a collection, and (embedded) the index folder Chroma leaves of it."""
        with self._calls():
            self.client.delete_collection(name)
        if self.path is not None:
            sweep_segment_folders(self.path)

    def count(self) -> int:
        with self._calls():
            return int(self.collection.count())

    def probe(self) -> None:
        """Read the collection back (a count, then a one-vector query): a damaged segment
        (a truncated or zeroed HNSW file) raises here rather than in the middle of work."""
        with self._calls():
            if self.collection.count():
                self.collection.query(
                    query_embeddings=np.ones((1, self.dim), dtype=np.float32),
                    n_results=1,
                    include=[],
                )

    def _get_or_create(self, name: str, metadata: dict[str, Any]) -> Any:
        return self.client.get_or_create_collection(
            name, configuration={"hnsw": HNSW}, metadata=metadata, embedding_function=None
        )

    def recreate(self) -> None:
        """Drop this collection and create it again, empty, with the same settings."""
        name, metadata = self.collection.name, dict(self.collection.metadata or {})
        self.drop_collection(name)
        with self._calls():
            self.collection = self._get_or_create(name, metadata)

    def nearest(
        self, vector: np.ndarray, k: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine distance) of the k nearest chunks. Only ids and distances: the
        text and lines come from the catalog (Chroma fetching them too took twice as long)."""
        with self._calls():
            result = self.collection.query(
                query_embeddings=vector.reshape(1, -1),
                n_results=k,
                where=where,  # type: ignore[arg-type]
                include=["distances"],
            )
        distances = (result["distances"] or [[]])[0]
        return [(i, float(d)) for i, d in zip(result["ids"][0], distances, strict=True)]
