"""The catalog: SQLite (WAL) record of sources, files, chunks, and the embedding cache.

It is the record of what is indexed; the vector store is derived from it. Chunk rows and
file rows of one batch change in one transaction, so the catalog is always consistent
with itself, and `Indexer.sweep` makes the vector store agree with it after a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contextd.errors import CatalogLocked, DiskFull, SourceError, StoreError
from contextd.health import LOW_SPACE_BYTES, free_bytes
from contextd.lexical import code_tokens, fts_query
from contextd.records import Chunk, FileState

log = logging.getLogger(__name__)

SOURCES_COPY = "sources.json"  # the source list beside the catalog, for `doctor --repair`
CACHE_SPARE_MIN = 20_000  # unused cached vectors always kept (30 MB at 384 dims)
MERGE_PAGES = 2000  # FTS pages merged per step: ~0.5 s here
COMPACT_MIN_BYTES = 64 << 20  # free pages worth a VACUUM after `remove`
OVERFETCH_SHARE = 0.25  # a filtered keyword search ranks all matches first when this many pass
OVERFETCH = 3  # how many times the expected number of matches it then takes to filter
PENDING_WINDOW = 4  # slices' worth of the backlog one slice is picked from, by length
NOT_HELD = "hash NOT IN (SELECT hash FROM chunks)"  # a cached vector no chunk uses

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    root TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    added_at REAL NOT NULL,
    indexed_at REAL,
    indexed_commit TEXT,
    dirty INTEGER NOT NULL DEFAULT 0,
    reconciled_at REAL               -- last full scan
);
CREATE TABLE IF NOT EXISTS files (
    source TEXT NOT NULL REFERENCES sources(name) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    status TEXT NOT NULL,            -- indexed | skipped
    reason TEXT,                     -- why it was skipped
    language TEXT,
    indexed_at REAL NOT NULL,
    PRIMARY KEY (source, path)
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,             -- the vector store id
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    language TEXT NOT NULL,
    hash TEXT NOT NULL,              -- of the embedded text: the embedding cache key
    text TEXT NOT NULL,
    embedded INTEGER NOT NULL DEFAULT 0,  -- 1 once its vector is in the store
    FOREIGN KEY (source, path) REFERENCES files(source, path) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(source, path);
CREATE INDEX IF NOT EXISTS chunks_by_language ON chunks(language);  -- search --lang
CREATE INDEX IF NOT EXISTS chunks_pending ON chunks(source) WHERE embedded = 0;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    meta, body, tokenize = "porter unicode61 tokenchars '_.'"
);                                   -- rowid = chunks.rowid
"""
# A rowid table: a 1.5 KB vector fits in its leaf page (see `_move_vectors_inline`).
VECTORS_TABLE = """
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    used REAL NOT NULL DEFAULT 0,    -- when a pass last wrote or reused it (unix seconds)
    UNIQUE (model, hash)
)
"""
SCHEMA += VECTORS_TABLE + ";"


def lexical_entry(chunk: Chunk) -> tuple[str, str]:
    """What the FTS index holds for a chunk: its names (path, symbol) and its body."""
    return (
        " ".join(code_tokens(f"{chunk.path} {chunk.symbol}")),
        " ".join(code_tokens(chunk.text)),
    )


@dataclass(frozen=True)
class SourceRow:
    name: str
    root: Path
    kind: str
    added_at: float
    indexed_at: float | None
    indexed_commit: str | None
    dirty: bool
    reconciled_at: float | None


@dataclass(frozen=True)
class StoredChunk:
    id: str
    source: str
    chunk: Chunk
    hash: str  # the embedding cache key, as stored (`chunk.hash` hashes the text again)


def _filters(
    sources: list[str] | None, languages: list[str] | None, table: str = ""
) -> tuple[str, tuple[str, ...]]:
    """`AND` clauses (and their values) keeping chunks of these sources and languages."""
    sql, args = "", []
    for column, values in (("source", sources), ("language", languages)):
        if values:
            sql += f" AND {table}{column} IN ({','.join('?' * len(values))})"
            args += values
    return sql, tuple(args)


def sqlite_error(path: Path, timeout_s: float, exc: sqlite3.OperationalError) -> Exception:
    """A lock held too long or a full disk, as an error that says what to do; else `exc`."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return CatalogLocked(
            f"The catalog at {path} is locked by another process ({text}; waited "
            f"{timeout_s:.0f}s). Close whatever holds it (`fuser {path}` names it), or run "
            "`contextd stop`, then try again."
        )
    if "disk is full" in text or "No space left" in text:
        return DiskFull(
            f"The disk holding {path.parent} is full ({text}). Free some space there; "
            "contextd picks up where it stopped (`contextd status` shows it)."
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(
            f"The catalog at {path} cannot be written ({text}). Make it and its folder "
            "writable (`ls -l`; `lsattr` for the immutable flag), or point CONTEXTD_HOME "
            "at a data dir you can write."
        )
    return exc


class _Connection(sqlite3.Connection):
    """A connection whose lock timeouts and full-disk failures raise StoreError subclasses."""

    path: Path = Path()
    timeout_s: float = 0.0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            raise sqlite_error(self.path, self.timeout_s, exc) from exc

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.OperationalError as exc:
            raise sqlite_error(self.path, self.timeout_s, exc) from exc

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(script)
        except sqlite3.OperationalError as exc:
            raise sqlite_error(self.path, self.timeout_s, exc) from exc


def is_damage(exc: sqlite3.Error) -> bool:
    """A catalog file that is not (or no longer) a sound database, as opposed to a locked
    one, a full disk, or a bug."""
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def damaged_message(path: Path, problem: str) -> str:
    return (
        f"The catalog at {path} is damaged ({problem}). `contextd doctor --repair` moves it "
        "aside and starts a new one with your sources; `contextd reindex` then rebuilds it."
    )


def damage(path: Path) -> str | None:
    """What SQLite finds wrong with the catalog file (a quick check), or None."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return None if _cannot_open(exc) else str(exc)
    try:
        emptied = _emptied(path, db)
        if emptied:
            return emptied
        rows = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.OperationalError as exc:
        return None if "locked" in str(exc) or _cannot_open(exc) else str(exc)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.close()
    if rows == ["ok"]:
        return None
    # One row may hold many lines ("*** in database main ***", then one per bad cell): a
    # message of a hundred lines hid what to do, so the first few stand for the rest.
    lines = [ln.strip() for r in rows for ln in str(r).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("***")]
    more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
    return "; ".join(lines[:3]) + more


def _cannot_open(exc: sqlite3.Error) -> bool:
    """A catalog that cannot be opened (a read-only folder, where WAL's shared-memory file
    cannot be made; no permission) is no damage: moving it aside would not help."""
    return getattr(exc, "sqlite_errorname", "") in (
        "SQLITE_CANTOPEN",
        "SQLITE_READONLY",
        "SQLITE_PERM",
    )


def _emptied(path: Path, db: sqlite3.Connection) -> str | None:
    """A catalog with no tables at all, while the copy of its source list beside it names
    sources: a file truncated to nothing (SQLite takes an empty file for a new database)."""
    if db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
        return None
    rows = read_sources_copy(path)
    if not rows:
        return None
    return f"it is empty, while {SOURCES_COPY} beside it lists {len(rows)} source(s)"


def _aside(path: Path) -> Path:
    """A free name beside `path` to keep a damaged file under: `name.damaged-<time>`."""
    base = f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, n = path.with_name(base), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{base}-{n}")
    return aside


def read_sources_copy(path: Path) -> list[dict[str, str]] | None:
    """The source list saved beside the catalog at `path`: [] when there is none yet, and
    None when it is there but cannot be read as one (damaged, or not ours)."""
    copy = path.with_name(SOURCES_COPY)
    try:
        rows = json.loads(copy.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return None
    fields = ("name", "root", "kind")
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and all(isinstance(r.get(f), str) for f in fields) for r in rows
    ):
        return None
    return rows


@dataclass
class Afresh:
    """What `start_afresh` did: where the damaged catalog went, the sources restored, and
    where an unreadable copy of the source list went (None if it was sound)."""

    aside: Path
    restored: list[str]
    copy_aside: Path | None = None


def start_afresh(path: Path) -> Afresh:
    """Move a damaged catalog aside and make a new one holding the sources it had (from
    the copy beside it). An unreadable copy is moved aside too, never lost."""
    aside = _aside(path)
    for suffix in ("-wal", "-shm", ""):
        part = Path(f"{path}{suffix}")
        if part.exists():
            os.replace(part, Path(f"{aside}{suffix}"))
    rows = read_sources_copy(path)
    copy_aside = None
    if rows is None:
        copy_aside = _aside(path.with_name(SOURCES_COPY))
        os.replace(path.with_name(SOURCES_COPY), copy_aside)
        rows = []
    catalog = Catalog(path, fresh=True)
    try:
        for row in rows:
            catalog.add_source(row["name"], Path(row["root"]), row["kind"])
    finally:
        catalog.close()
    return Afresh(aside, [row["name"] for row in rows], copy_aside)


class Catalog:
    """One SQLite connection per thread over a WAL database: readers never block the writer."""

    def __init__(self, path: Path, timeout_s: float = 5.0, fresh: bool = False) -> None:
        """`fresh`: an empty catalog is meant to be new, whatever the source list beside
        it says (`start_afresh` fills it from that list)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        emptied = None if fresh else _emptied(path, self.db)
        if emptied:
            self.close()
            raise StoreError(damaged_message(path, emptied))
        self._migrate_columns()
        self.db.executescript(SCHEMA)
        self._backfill_fts()
        self._move_vectors_inline()
        copy = read_sources_copy(path)
        if copy is None:  # kept aside, never overwritten: it may be all that names them
            aside = _aside(path.with_name(SOURCES_COPY))
            with contextlib.suppress(OSError):
                os.replace(path.with_name(SOURCES_COPY), aside)
            log.warning("%s was unreadable: kept as %s, written anew", SOURCES_COPY, aside.name)
        if copy is None or not path.with_name(SOURCES_COPY).exists():
            self._save_sources()

    def _migrate_columns(self) -> None:
        """Bring a catalog written by an earlier contextd up to this schema, in place."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        if "chunks" not in tables:
            return  # a new catalog: SCHEMA creates everything
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(sources)")}
        if "reconciled_at" not in columns:
            self.db.execute("ALTER TABLE sources ADD COLUMN reconciled_at REAL")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(chunks)")}
        if "embedded" not in columns:  # earlier versions stored every chunk as they went
            self.db.execute("ALTER TABLE chunks ADD COLUMN embedded INTEGER NOT NULL DEFAULT 1")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(vectors)")}
        if "vectors" in tables and "used" not in columns:
            self.db.execute("ALTER TABLE vectors ADD COLUMN used REAL NOT NULL DEFAULT 0")

    def _move_vectors_inline(self) -> None:
        """Rewrite a vectors table that an earlier contextd made WITHOUT ROWID.

        WITHOUT ROWID keeps about 1 KB of a row in the tree: the rest of each 1.5 KB
        vector took a 4 KB overflow page of its own, so the cache took 2.3x the space
        (342 MiB for the standard library's 77k vectors, 149 after) and each lookup read
        two pages. Once, in one transaction; the pages it frees go back to the disk.
        """
        sql = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'vectors'"
        if "WITHOUT ROWID" not in self.db.execute(sql).fetchone()[0].upper():
            return
        count = self.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        log.info("rewriting the embedding cache's table (%d vectors) in a smaller layout", count)
        with self.transaction() as db:
            if "WITHOUT ROWID" not in db.execute(sql).fetchone()[0].upper():
                return  # another process rewrote it meanwhile
            db.execute("ALTER TABLE vectors RENAME TO vectors_without_rowid")
            db.execute(VECTORS_TABLE)
            db.execute(
                "INSERT INTO vectors (model, hash, vector, used) "
                "SELECT model, hash, vector, used FROM vectors_without_rowid"
            )
            db.execute("DROP TABLE vectors_without_rowid")
        with contextlib.suppress(StoreError):  # busy: a later compact gives the space back
            self.compact()

    def _backfill_fts(self) -> None:
        has_fts = self.db.execute("SELECT 1 FROM chunks_fts LIMIT 1").fetchone()
        if not has_fts and self.db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone():
            rows = self.db.execute("SELECT rowid, path, symbol, text FROM chunks").fetchall()
            with self.transaction() as db:
                db.executemany(
                    "INSERT INTO chunks_fts (rowid, meta, body) VALUES (?, ?, ?)",
                    [(r, *lexical_entry(Chunk(p, "", 0, 0, t, s))) for r, p, s, t in rows],
                )

    @property
    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.timeout_s,
                isolation_level=None,
                check_same_thread=False,
                factory=_Connection,
            )
            conn.path, conn.timeout_s = self.path, self.timeout_s
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except StoreError:
            raise  # locked, or a full disk
        except sqlite3.OperationalError as exc:
            free = free_bytes(self.path.parent)
            if free is not None and free < LOW_SPACE_BYTES:  # WAL's shared memory file
                raise DiskFull(
                    f"The disk holding {self.path.parent} is full: the catalog cannot be "
                    f"opened ({exc}). Free some space there; contextd picks up where it "
                    "stopped (`contextd status` shows it)."
                ) from None
            raise StoreError(f"The catalog at {self.path} cannot be opened ({exc}).") from None
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            raise StoreError(damaged_message(self.path, str(exc))) from None
        with self._guard:
            self._all.append(conn)
        # A thread's connection goes with the thread: a server that starts one per request
        # would otherwise keep a connection (and a file descriptor) for every request.
        weakref.finalize(threading.current_thread(), self._release, conn)
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._guard:
            if conn not in self._all:
                return  # closed with the catalog already
            self._all.remove(conn)
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # a failed COMMIT (a full disk) leaves it open
                try:
                    self.db.execute("ROLLBACK")
                except (sqlite3.Error, StoreError):
                    pass
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read view (WAL): the writer's commits made meanwhile stay unseen."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN")
        try:
            yield self.db
        finally:
            self.db.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- sources ----------------------------------------------------------------------------

    def add_source(self, name: str, root: Path, kind: str) -> SourceRow:
        try:
            self.db.execute(
                "INSERT INTO sources (name, root, kind, added_at) VALUES (?, ?, ?, ?)",
                (name, str(root), kind, time.time()),
            )
        except sqlite3.IntegrityError:
            same_root = self.db.execute(
                "SELECT name FROM sources WHERE root = ?", (str(root),)
            ).fetchone()
            if same_root:
                raise SourceError(
                    f"{root} is already the source '{same_root[0]}'; one folder is indexed "
                    f"once. To rename it: `contextd remove {same_root[0]}`, then add it again."
                ) from None
            raise SourceError(
                f"A source named '{name}' already exists (`contextd sources`). Pick another --name."
            ) from None
        self._save_sources()
        return self.source(name)

    def _save_sources(self) -> None:
        """Copy the source list beside the catalog: if the catalog is ever damaged beyond
        opening, `contextd doctor --repair` starts a new one with these sources."""
        rows = [{"name": r.name, "root": str(r.root), "kind": r.kind} for r in self.sources()]
        path = self.path.with_name(SOURCES_COPY)
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(rows, indent=1))
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: the catalog itself is what matters
            log.warning("could not write %s: %s", path, exc)

    def source(self, name: str) -> SourceRow:
        row = self.db.execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise SourceError(f"No source named '{name}'. Run `contextd sources` to list them.")
        return _source_row(row)

    def source_by_root(self, root: Path) -> SourceRow | None:
        row = self.db.execute("SELECT * FROM sources WHERE root = ?", (str(root),)).fetchone()
        return _source_row(row) if row else None

    def sources(self) -> list[SourceRow]:
        return [_source_row(r) for r in self.db.execute("SELECT * FROM sources ORDER BY name")]

    def remove_source(self, name: str) -> list[str]:
        """Forget a source; returns the vector ids to delete from the store."""
        self.source(name)
        ids = self.chunk_ids(name)
        with self.transaction() as db:
            self._drop_chunks(db, "source = ?", (name,))
            db.execute("DELETE FROM files WHERE source = ?", (name,))
            db.execute("DELETE FROM sources WHERE name = ?", (name,))
        self._save_sources()
        return sorted(ids)

    def mark_source(
        self,
        name: str,
        *,
        dirty: bool,
        indexed_commit: str | None = None,
        reconciled: bool = False,
    ) -> None:
        """Set the dirty flag; clearing it records the end of a run (and its commit)."""
        now = time.time()
        with self.transaction() as db:
            db.execute("UPDATE sources SET dirty = ? WHERE name = ?", (int(dirty), name))
            if not dirty:
                db.execute("UPDATE sources SET indexed_at = ? WHERE name = ?", (now, name))
            if indexed_commit:
                db.execute(
                    "UPDATE sources SET indexed_commit = ? WHERE name = ?", (indexed_commit, name)
                )
            if reconciled:
                db.execute("UPDATE sources SET reconciled_at = ? WHERE name = ?", (now, name))

    # -- files and chunks -------------------------------------------------------------------

    def file_states(self, source: str) -> dict[str, FileState]:
        rows = self.db.execute(
            "SELECT path, size, mtime_ns, hash, status FROM files WHERE source = ?", (source,)
        )
        return {p: FileState(s, m, h, st) for p, s, m, h, st in rows}

    def indexed_paths(self, source: str) -> list[str]:
        rows = self.db.execute(
            "SELECT path FROM files WHERE source = ? AND status = 'indexed'", (source,)
        )
        return [r[0] for r in rows]

    def paths_ending(self, sources: Sequence[str], tail: str, limit: int) -> list[str]:
        """Indexed paths that are `tail`, or end with `/tail` (at most `limit`)."""
        marks = ",".join("?" * len(sources))
        rows = self.db.execute(
            f"SELECT DISTINCT path FROM files WHERE source IN ({marks}) AND status = 'indexed' "
            "AND (path = ? OR substr(path, -length(?) - 1) = '/' || ?) LIMIT ?",
            (*sources, tail, tail, tail, limit),
        )
        return sorted(r[0] for r in rows)

    def unusual_paths(self, source: str) -> list[str]:
        """The source's paths that cleaning would change: any character outside printable
        ASCII, or markup's `<` and `[`. Few, and found without loading every path."""
        rows = self.db.execute(
            "SELECT path FROM files WHERE source = ? AND (path GLOB '*[^ -~]*' OR "
            "path GLOB '*[<[]*')",
            (source,),
        )
        return [r[0] for r in rows]

    def file_state(self, source: str, path: str) -> FileState | None:
        row = self.db.execute(
            "SELECT size, mtime_ns, hash, status FROM files WHERE source = ? AND path = ?",
            (source, path),
        ).fetchone()
        return FileState(*row) if row else None

    def file_chunk_spans(self, source: str, path: str) -> dict[str, tuple[int, int, bool]]:
        """Chunk id -> (start_line, end_line, embedded) of one file's chunks."""
        rows = self.db.execute(
            "SELECT id, start_line, end_line, embedded FROM chunks WHERE source = ? AND path = ?",
            (source, path),
        )
        return {i: (a, b, bool(e)) for i, a, b, e in rows}

    def chunk_ids(self, source: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM chunks WHERE source = ?", (source,))}

    def _drop_chunks(self, db: sqlite3.Connection, where: str, args: tuple[str, ...]) -> None:
        db.execute(
            f"DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks WHERE {where})", args
        )
        db.execute(f"DELETE FROM chunks WHERE {where}", args)

    def put_file(
        self,
        db: sqlite3.Connection,
        source: str,
        path: str,
        state: FileState,
        language: str | None = None,
        reason: str | None = None,
        chunks: Sequence[tuple[str, Chunk]] = (),
        lexical: Sequence[tuple[str, str]] | None = None,
        embedded: Collection[str] = (),
    ) -> None:
        """Replace one file's row, chunks and lexical entries; call inside `transaction()`.

        `lexical` is each chunk's (meta, body) as the FTS index takes them, when the
        caller tokenised them already; `embedded` names the chunks already in the store.
        """
        self._drop_chunks(db, "source = ? AND path = ?", (source, path))
        db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                source,
                path,
                state.size,
                state.mtime_ns,
                state.hash,
                state.status,
                reason,
                language,
                time.time(),
            ),
        )
        if not chunks:
            return
        db.executemany(
            "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    cid,
                    source,
                    c.path,
                    c.start_line,
                    c.end_line,
                    c.symbol,
                    c.language,
                    c.hash,
                    c.text,
                    int(cid in embedded),
                )
                for cid, c in chunks
            ],
        )
        if lexical is None:
            lexical = [lexical_entry(c) for _, c in chunks]
        rowids = dict(
            db.execute(
                "SELECT id, rowid FROM chunks WHERE source = ? AND path = ?", (source, path)
            ).fetchall()
        )
        db.executemany(
            "INSERT INTO chunks_fts (rowid, meta, body) VALUES (?, ?, ?)",
            [
                (rowids[cid], meta, body)
                for (cid, _), (meta, body) in zip(chunks, lexical, strict=True)
            ],
        )

    def touch_file(
        self, db: sqlite3.Connection, source: str, path: str, size: int, mtime_ns: int
    ) -> None:
        db.execute(
            "UPDATE files SET size = ?, mtime_ns = ? WHERE source = ? AND path = ?",
            (size, mtime_ns, source, path),
        )

    def delete_file(self, db: sqlite3.Connection, source: str, path: str) -> None:
        self._drop_chunks(db, "source = ? AND path = ?", (source, path))
        db.execute("DELETE FROM files WHERE source = ? AND path = ?", (source, path))

    def chunks(self, ids: Iterable[str], pending_only: bool = False) -> list[StoredChunk]:
        out: list[StoredChunk] = []
        only = " AND embedded = 0" if pending_only else ""
        id_list = list(ids)
        for i in range(0, len(id_list), 500):
            part = id_list[i : i + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(
                "SELECT id, source, path, language, start_line, end_line, text, symbol, hash "
                f"FROM chunks WHERE id IN ({marks}){only}",
                part,
            ):
                out.append(StoredChunk(row[0], row[1], Chunk(*row[2:8]), row[8]))
        return out

    def clear_chunks(self) -> None:
        """Forget every file and chunk (sources stay) before a full rebuild."""
        with self.transaction() as db:
            db.execute("DELETE FROM chunks_fts")
            db.execute("DELETE FROM chunks")
            db.execute("DELETE FROM files")
            db.execute(
                "UPDATE sources SET dirty = 0, indexed_at = NULL, indexed_commit = NULL, "
                "reconciled_at = NULL"
            )

    def lexical(
        self,
        terms: list[str],
        limit: int,
        sources: list[str] | None = None,
        languages: list[str] | None = None,
        paths: Collection[str] | None = None,
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score, higher is better) for chunks matching any of the terms
        (in files at `paths` alone, when given)."""
        if not terms:
            return []
        args: list[object] = [fts_query(terms)]
        if not sources and not languages and paths is None:
            # Rank in the FTS table alone, then look up only the best: joining every match
            # (thousands for common words) before the LIMIT cost twice as much.
            sql = (
                "SELECT c.id, f.score FROM (SELECT rowid, -bm25(chunks_fts, 3.0, 1.0) AS score"
                " FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY score DESC, rowid LIMIT ?) f "
                "JOIN chunks c ON c.rowid = f.rowid ORDER BY f.score DESC, f.rowid"
            )
            return [(i, float(s)) for i, s in self.db.execute(sql, [*args, limit])]
        if paths is None and (share := self._share(sources, languages)) >= OVERFETCH_SHARE:
            # Most chunks pass the filter: the best matches of all, filtered, are the best
            # of those that pass (a sort of every match costs ~1.4x on 700k chunks).
            fetch = math.ceil(limit / share * OVERFETCH)
            clause, values = _filters(sources, languages, "c.")
            sql = (
                f"SELECT c.id, f.score, 1{clause} FROM (SELECT rowid, "
                "-bm25(chunks_fts, 3.0, 1.0) AS score FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY score DESC, rowid LIMIT ?) f "
                "JOIN chunks c ON c.rowid = f.rowid ORDER BY f.score DESC, f.rowid"
            )
            rows = self.db.execute(sql, [*values, *args, fetch]).fetchall()
            kept = [(i, float(s)) for i, s, passes in rows if passes]
            if len(kept) >= limit or len(rows) < fetch:  # enough, or every match was seen
                return kept[:limit]
        sql = (
            "SELECT c.id, -bm25(chunks_fts, 3.0, 1.0) AS score FROM chunks_fts "
            "JOIN chunks c ON c.rowid = chunks_fts.rowid WHERE chunks_fts MATCH ?"
        )
        clause, values = _filters(sources, languages, "c.")
        sql += clause
        args += values
        if paths is not None:
            sql += " AND c.path IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(sorted(paths)))
        sql += " ORDER BY score DESC, c.rowid LIMIT ?"  # ties in a stable order
        args.append(limit)
        return [(i, float(s)) for i, s in self.db.execute(sql, args)]

    def has_module(self, source: str, name: str) -> bool:
        """Whether a source has a file `name.*` (or `_name.*`) or a folder `name/` anywhere."""
        esc = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        row = self.db.execute(
            "SELECT 1 FROM files WHERE source = ? AND status = 'indexed' AND ("
            "path LIKE ? ESCAPE '\\' OR path LIKE ? ESCAPE '\\' OR path LIKE ? ESCAPE '\\' "
            "OR path LIKE ? ESCAPE '\\' OR path LIKE ? ESCAPE '\\') LIMIT 1",
            (source, f"{esc}.%", f"%/{esc}.%", f"%/\\_{esc}.%", f"{esc}/%", f"%/{esc}/%"),
        ).fetchone()
        return row is not None

    def _counted(self, key: tuple[str, str], sql: str, args: tuple[str, ...]) -> int:
        """A COUNT, remembered until the database changes: a commit on any connection
        (`data_version`) or a change on this one (`total_changes`)."""
        version = (self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes)
        memo: tuple[tuple[int, int], dict[tuple[str, str], int]] | None = getattr(
            self._local, "counts", None
        )
        if memo is None or memo[0] != version:
            memo = (version, {})
            self._local.counts = memo
        if key not in memo[1]:
            memo[1][key] = int(self.db.execute(sql, args).fetchone()[0])
        return memo[1][key]

    def name_frequency(self, term: str) -> int:
        """How many chunks have a term in their path or symbol name."""
        return self._counted(
            ("names", term),
            "SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
            ("meta : " + fts_query([term]),),
        )

    def _share(self, sources: list[str] | None, languages: list[str] | None) -> float:
        """The share of all chunks in these sources and languages."""
        total = self.chunk_count()
        if not total:
            return 0.0
        clause, args = _filters(sources, languages)
        key = ("share", json.dumps([sorted(sources or []), sorted(languages or [])]))
        return self._counted(key, f"SELECT COUNT(*) FROM chunks WHERE 1{clause}", args) / total

    def chunk_count(self) -> int:
        return self._counted(("chunks", ""), "SELECT COUNT(*) FROM chunks", ())

    def document_frequency(self, term: str) -> int:
        """How many chunks contain a term (as the lexical index tokenises it)."""
        return self._counted(
            ("documents", term),
            "SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
            (fts_query([term]),),
        )

    def holds(
        self, term: str, sources: list[str] | None = None, languages: list[str] | None = None
    ) -> bool:
        """Whether some chunk (of these sources and languages, when given) has a term."""
        if not sources and not languages:
            return self.document_frequency(term) > 0
        clause, args = _filters(sources, languages, "c.")
        sql = (
            "SELECT 1 FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ?{clause} LIMIT 1"
        )
        return self.db.execute(sql, (fts_query([term]), *args)).fetchone() is not None

    def spans(self, source: str, path: str, until: int) -> list[tuple[int, int, str]]:
        """(start line, end line, symbol) of each chunk of one file that starts by line
        `until`, in file order."""
        sql = (
            "SELECT start_line, end_line, symbol FROM chunks WHERE source = ? AND path = ? "
            "AND start_line <= ? ORDER BY start_line, end_line"
        )
        return [(r[0], r[1], r[2]) for r in self.db.execute(sql, (source, path, until))]

    def has_language(self, language: str) -> bool:
        sql = "SELECT EXISTS (SELECT 1 FROM chunks WHERE language = ?)"
        return bool(self.db.execute(sql, (language,)).fetchone()[0])

    def languages(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT language FROM chunks ORDER BY 1")]

    def skipped(self, source: str | None = None) -> list[tuple[str, str, str]]:
        sql = "SELECT source, path, reason FROM files WHERE status = 'skipped'"
        args: tuple[str, ...] = ()
        if source:
            sql, args = sql + " AND source = ?", (source,)
        return [tuple(r) for r in self.db.execute(sql + " ORDER BY source, path", args)]

    def counts(self, source: str) -> dict[str, int]:
        files = self.db.execute(
            "SELECT status, COUNT(*) FROM files WHERE source = ? GROUP BY status", (source,)
        ).fetchall()
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks WHERE source = ?", (source,))
        by_status = dict(files)
        return {
            "files": by_status.get("indexed", 0),
            "skipped": by_status.get("skipped", 0),
            "chunks": chunks.fetchone()[0],
            "pending": self.pending_count([source]),
        }

    # -- the embedding backlog ------------------------------------------------------------

    def pending_count(self, sources: Sequence[str] | None = None) -> int:
        """Chunks in the lexical index whose vectors are not in the store yet."""
        if sources is None:
            row = self.db.execute("SELECT COUNT(*) FROM chunks WHERE embedded = 0").fetchone()
        else:
            marks = ",".join("?" * len(sources))
            row = self.db.execute(
                f"SELECT COUNT(*) FROM chunks WHERE embedded = 0 AND source IN ({marks})",
                list(sources),
            ).fetchone()
        return int(row[0])

    def pending_chunks(
        self, limit: int, recent_ns: int, skip: Collection[str] = ()
    ) -> list[StoredChunk]:
        """About `limit` chunks to embed next (at most half as many again), of similar
        length.

        First in line are the chunks of files changed since `recent_ns` (someone is
        working on them), then the longest-waiting, in file order. The slice is the
        first in line and its neighbours by length among the next `PENDING_WINDOW`
        slices' worth of the same rank: batches of similar length carry less padding
        (on psf/requests, 0.978 of the tokens a batch computes are real, against 0.957
        for the line as it stands), and a chunk waits at most a few slices longer.
        """
        rows = self.db.execute(
            "SELECT c.id, c.source, c.path, c.language, c.start_line, c.end_line, c.text, "
            "c.symbol, c.hash, f.mtime_ns >= ? AS recent FROM chunks c "
            "JOIN files f ON f.source = c.source AND f.path = c.path "
            "WHERE c.embedded = 0 ORDER BY recent DESC, f.indexed_at, c.rowid LIMIT ?",
            (recent_ns, limit * PENDING_WINDOW + len(skip)),
        )
        line = [
            (r[9], StoredChunk(r[0], r[1], Chunk(*r[2:8]), r[8])) for r in rows if r[0] not in skip
        ]
        if not line:
            return []
        rank = line[0][0]
        same = [c for recent, c in line if recent == rank]  # never older work for a recent edit
        by_length = sorted(same, key=lambda c: len(c.chunk.embed_text))
        groups = max(1, round(len(by_length) / limit))
        size = -(-len(by_length) // groups)
        at = next(i for i, c in enumerate(by_length) if c is same[0]) // size
        return by_length[at * size : (at + 1) * size]

    def mark_embedded(self, ids: Sequence[str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE chunks SET embedded = 1 WHERE id = ?", [(i,) for i in ids])

    def mark_unembedded(self, ids: Iterable[str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE chunks SET embedded = 0 WHERE id = ?", [(i,) for i in ids])

    def mark_all_unembedded(self) -> int:
        """Put every chunk back in the embedding backlog (the store lost its vectors)."""
        with self.transaction() as db:
            return int(db.execute("UPDATE chunks SET embedded = 0 WHERE embedded = 1").rowcount)

    def embedded_ids(self, source: str) -> set[str]:
        rows = self.db.execute("SELECT id FROM chunks WHERE source = ? AND embedded = 1", (source,))
        return {r[0] for r in rows}

    # -- embedding cache ------------------------------------------------------------------

    def cached_vectors(
        self, model: str, hashes: Iterable[str], reuse: bool = False
    ) -> dict[str, np.ndarray]:
        """The cached vectors of these texts; `reuse` marks them used now (an index pass
        takes them), which keeps them longest when the cache is trimmed."""
        found: dict[str, np.ndarray] = {}
        keys = list(set(hashes))
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            for h, blob in self.db.execute(
                f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({marks})",
                (model, *part),
            ):
                found[h] = np.frombuffer(blob, dtype=np.float32)
        if reuse and found:
            with self.transaction() as db:
                db.executemany(
                    "UPDATE vectors SET used = ? WHERE model = ? AND hash = ?",
                    [(time.time(), model, h) for h in found],
                )
        return found

    def unused_vectors(self, drop: bool = False) -> int:
        """Cached vectors of text no chunk holds any more (edited away, or of a removed
        source): they save re-embedding text that comes back. `drop` deletes them; their
        pages are reused by later writes (the file does not shrink)."""
        where = f"WHERE {NOT_HELD}"
        if drop:
            with self.transaction() as db:
                return int(db.execute(f"DELETE FROM vectors {where}").rowcount)
        return int(self.db.execute(f"SELECT COUNT(*) FROM vectors {where}").fetchone()[0])

    def optimize_lexical(self) -> None:
        """Merge the FTS index into one segment, dropping the entries of replaced text: a
        step of MERGE_PAGES pages per transaction (FTS5's incremental 'optimize'), so no
        other writer waits long. Done when a step changes nothing (FTS5's documented test)."""
        while True:
            before = self.db.total_changes
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('merge', ?)", (-MERGE_PAGES,)
                )
            if self.db.total_changes - before < 2:
                return

    def compact(self, merge: bool = False) -> None:
        """Give the disk back the pages a large delete left free (first merging the keyword
        index, which keeps deleted text until then, when `merge`), when they are at least
        COMPACT_MIN_BYTES and a quarter of the file. VACUUM rewrites the file (it needs
        that much free space for a moment)."""
        if merge:
            self.optimize_lexical()
        page = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        free = int(self.db.execute("PRAGMA freelist_count").fetchone()[0])
        total = int(self.db.execute("PRAGMA page_count").fetchone()[0])
        if free * page >= COMPACT_MIN_BYTES and free * 4 >= total:
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the rewrite went via the WAL

    def trim_cache(self, model: str) -> int:
        """Keep at most `max(chunks, CACHE_SPARE_MIN)` vectors that `model`'s index does
        not use (text edited away, or another model's: enough to switch back to a branch,
        or a model, without embedding), dropping the longest unused first. Returns how
        many went."""
        unused = f"model != ? OR {NOT_HELD}"
        spare = max(self.chunk_count(), CACHE_SPARE_MIN)
        count = self.db.execute(f"SELECT COUNT(*) FROM vectors WHERE {unused}", (model,))
        excess = int(count.fetchone()[0]) - spare
        if excess <= 0:
            return 0
        with self.transaction() as db:
            return int(
                db.execute(
                    "DELETE FROM vectors WHERE (model, hash) IN (SELECT model, hash FROM "
                    f"vectors WHERE {unused} ORDER BY used LIMIT ?)",
                    (model, excess),
                ).rowcount
            )

    def put_vectors(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors (model, hash, vector, used) VALUES (?, ?, ?, ?)",
                [(model, h, np.asarray(v, dtype=np.float32).tobytes(), now) for h, v in items],
            )


def _source_row(row: tuple) -> SourceRow:
    name, root, kind, added_at, indexed_at, commit, dirty, reconciled_at = row
    return SourceRow(
        name, Path(root), kind, added_at, indexed_at, commit, bool(dirty), reconciled_at
    )
