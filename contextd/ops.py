"""The operations behind every command, run either in the daemon or in-process.

Each takes an App and plain arguments and returns plain data (JSON-able), so the CLI
shows the same thing whether the warm daemon answered or the command did the work itself.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from contextd import hooks, remote
from contextd.app import App, resolve_root
from contextd.confidence import source_path
from contextd.connectors.base import detect_kind, git_internals, open_source, rev_parse
from contextd.connectors.filters import is_data_dir, secret_root
from contextd.errors import ContextdError, SourceError, StoreError, StoreUnavailable
from contextd.health import low_space
from contextd.pipeline import IndexStats
from contextd.reading import read_file
from contextd.search import search as run_search

Progress = Callable[[dict[str, Any]], None]
log = logging.getLogger(__name__)

MERGE_AFTER_CHUNKS = 5000  # a removal this large merges the keyword index (1 s per 80k chunks)

SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SUMMED = ("files", "chunks", "skipped", "changed", "deleted", "embedded", "cached", "pending")


def progress_of(stats: IndexStats) -> dict[str, Any]:
    return {**stats.as_dict(), "total_files": stats.total_files, "phase": stats.phase}


def add(app: App, path: str, name: str | None = None, install_hooks: bool = True) -> dict:
    root = resolve_root(Path(path))
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise SourceError(f"{path} {what}. Give the path of a repository or folder.")
    if reason := secret_root(root):
        why = reason.removeprefix("secret ").strip("()")
        raise SourceError(
            f"{root} is a folder that holds secrets ({why}): "
            "contextd never indexes it or shares its files. Add the project's own folder."
        )
    if internals := git_internals(root):
        raise SourceError(
            f"{root} is a bare git repository: it holds git's own files, not a working "
            f"tree. Clone it (`git clone {root} DIR`) and add DIR."
            if internals == "bare"
            else f"{root} is inside a repository's .git folder, which is never indexed. "
            "Add the repository's own folder."
        )
    if data_dir := next((p for p in (root, *root.parents) if is_data_dir(p)), None):
        raise SourceError(
            f"{root} is {'' if data_dir == root else 'inside '}a contextd data dir "
            f"({data_dir}), which holds the index and the daemon's tokens and is never "
            "indexed. Add the project's own folder."
        )
    existing = app.catalog.source_by_root(root)
    if name is None:  # an added folder keeps its name (one from before names were checked)
        name = existing.name if existing else _name_from(root)
    elif not SOURCE_NAME.fullmatch(name):
        raise SourceError(
            f"'{name}' cannot name a source: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (--name my-project)."
        )
    if existing and existing.name == name:
        row, created = existing, False
    else:
        _refuse_nesting(app, root)
        row, created = app.catalog.add_source(name, root, detect_kind(root)), True
    installed: list[str] = []
    hooks_note = None
    if row.kind == "git" and install_hooks:
        try:
            hooks.install(row.root, app.settings.home)
        except hooks.SharedHooksFolder as exc:
            hooks_note = str(exc)
        installed = hooks.installed(row.root, app.settings.home)
    return {
        "name": row.name,
        "kind": row.kind,
        "root": str(row.root),
        "created": created,
        "hooks": installed,
        "hooks_note": hooks_note,
    }


def _name_from(root: Path) -> str:
    """The folder's name, made fit to type: "My Project (old)" -> My-Project-old."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", root.name).strip("-.") or "source"


def _refuse_nesting(app: App, root: Path) -> None:
    """A folder whose files a source already indexes, or one holding such a source, would
    be indexed twice: every result from it would come back twice. A submodule or an
    ignored folder inside a repository is not indexed with it, and may be a source."""
    for row in app.catalog.sources():
        if row.root != root and root.is_relative_to(row.root):
            inside = root.relative_to(row.root).as_posix()
            if _indexes_below(row.name, row.root, row.kind, inside):
                raise SourceError(
                    f"{root} is inside the source '{row.name}' and already indexed with it; "
                    f"narrow a search to it with `--source {row.name} --path '{inside}'`."
                )
        if row.root != root and row.root.is_relative_to(root):
            inside = row.root.relative_to(root).as_posix()
            if _indexes_below("new", root, detect_kind(root), inside):
                raise SourceError(
                    f"{root} holds the source '{row.name}' ({row.root}), which would then be "
                    f"indexed twice. Run `contextd remove {row.name}` first, then add {root}."
                )


def _indexes_below(name: str, root: Path, kind: str, folder: str) -> bool:
    """Does the source at `root` take any file below `folder`? (A submodule is listed
    only as its own path: its files are not the superproject's.) A scan that fails
    refuses: taken as "no", `contextd add /` was accepted over every other source."""
    try:
        listed = open_source(name, root, kind).scan([folder])
        return next((p for p in listed if p.startswith(folder + "/")), None) is not None
    except SourceError as exc:
        raise SourceError(
            f"Could not check whether {root} indexes {root / folder} (the two would then "
            f"be indexed twice): {exc}"
        ) from None


def remove(app: App, source: str) -> dict:
    """Forget a source. Its hooks go too, unless another source shares the hooks folder (a
    worktree, a common core.hooksPath); a repository that is gone is forgotten anyway."""
    row = app.catalog.source(source)
    before = _disk_use(app.settings.home)
    chunks = app.forget(source)  # first: a store it cannot reach leaves everything as it was
    note = None
    if row.kind == "git" and row.root.is_dir():
        try:
            folder = hooks.hooks_dir(row.root)
            sharing = [r.name for r in app.catalog.sources() if r.name != source
                       and r.kind == "git" and _hooks_dir_or_none(r.root) == folder]  # fmt: skip
            if sharing:
                note = f"its git hooks stay, since {', '.join(sharing)} use(s) them too."
            else:
                _, others = hooks.uninstall(row.root, app.settings.home)
                if others:
                    note = (
                        "its git hooks stay for the other contextd data dir(s) that watch it: "
                        + ", ".join(map(str, others))
                        + "."
                    )
        except (SourceError, OSError) as exc:
            note = f"its git hooks were left as they are. {exc}"
    source_path(app.settings.home, source).unlink(missing_ok=True)  # its own calibration
    _compact(app, chunks)
    freed = max(0, before - _disk_use(app.settings.home))
    return {"name": source, "chunks": chunks, "note": note, "freed": freed}


def _compact(app: App, removed: int) -> None:
    """Give back the catalog's pages the removal freed. The embedding cache keeps the
    source's vectors (bounded as always, after the next embedding): the same files added
    again, from another path, are not embedded again. The removal is done whatever
    happens here."""
    try:
        app.catalog.compact(merge=removed >= MERGE_AFTER_CHUNKS)
    except (StoreError, sqlite3.Error) as exc:  # a reader holding the catalog, a full disk
        log.warning("the catalog was not compacted after a removal: %s", exc)


def _disk_use(home: Path) -> int:
    """Bytes in the data dir (the embedded store's included)."""
    total = 0
    for folder, _, names in os.walk(home):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # gone meanwhile
                pass
    return total


def _hooks_of(root: Path, home: Path) -> list[str] | None:
    """Our hooks in the repository that notify this data dir; None where none are ever
    written (a repository that is gone, a hooks folder the team commits)."""
    if not root.is_dir():
        return None
    found = hooks.installed(root, home)
    return None if len(found) < len(hooks.HOOKS) and hooks.shared_folder(root) else found


def _hooks_dir_or_none(root: Path) -> Path | None:
    try:
        return hooks.hooks_dir(root) if root.is_dir() else None
    except SourceError:
        return None


def summarize(results: list[IndexStats], seconds: float) -> dict[str, Any]:
    total: dict[str, Any] = {k: sum(getattr(r, k) for r in results) for k in SUMMED}
    embed_s = sum(r.embed_seconds for r in results)
    total |= {
        "seconds": round(seconds, 3),
        "searchable_seconds": round(sum(r.searchable_seconds for r in results), 3),
        "embed_seconds": round(embed_s, 3),
        "embed_rate": round(total["embedded"] / embed_s, 1) if embed_s else 0.0,
        "sources": [r.as_dict() for r in results],
    }
    return total


def index(
    app: App,
    sources: list[str] | None = None,
    progress: Progress | None = None,
    embed: bool = True,
) -> dict:
    """Every source (or those named) made searchable, then, with `embed`, embedded."""
    started = time.perf_counter()
    rows = [app.catalog.source(n) for n in sources] if sources else app.catalog.sources()
    report = (lambda st: progress(progress_of(st))) if progress else None
    results, failed = [], []
    for row in rows:  # one source that cannot be read does not hold up the others
        try:
            results.append(app.index(row, report, embed=False))
        except SourceError as exc:
            if sources:
                raise
            log.warning("index: %s", exc)
            failed.append({"source": row.name, "error": str(exc)})
    if embed and any(r.pending for r in results):
        t0 = time.perf_counter()
        try:
            done = app.indexer.embed_pending(IndexStats("(all)"), report)
        except StoreUnavailable as exc:  # vectors made meanwhile are in the cache
            raise StoreUnavailable(
                f"{exc} The changes are searchable by keyword now; run `contextd index` "
                "again once the store answers, to embed them."
            ) from None
        for r in results:  # one backlog for all sources; its figures go to the first
            r.pending = app.catalog.counts(r.source)["pending"]
        first = results[0]
        first.embedded, first.cached = done.embedded, done.cached
        first.embed_seconds = done.embed_seconds
        first.seconds += time.perf_counter() - t0
    return summarize(results, time.perf_counter() - started) | {"failed": failed}


def reindex(
    app: App, progress: Progress | None = None, embed: bool = True, take_over: bool = False
) -> dict:
    """Drop every chunk and vector and index again, once nothing stands in the way: every
    source readable and the model loaded (a wrong CONTEXTD_MODEL must not empty the index)."""
    for row in app.catalog.sources():
        open_source(row.name, row.root, row.kind)  # raises, naming the source and what to do
    app.embedder.load()
    app.reset_index(take_over)
    return index(app, None, progress, embed)


def search(
    app: App,
    query: str,
    k: int = 8,
    sources: list[str] | None = None,
    path_glob: str | None = None,
    language: str | None = None,
    files: bool = False,
    confidence: bool = True,
) -> dict[str, Any]:
    """Results with their confidence, and whether the index most likely holds the answer."""
    answer = run_search(
        app,
        query,
        k=k,
        sources=sources,
        path_glob=path_glob,
        language=language,
        files=files,
        confidence=confidence,
    )
    rows = {r.name: r for r in app.catalog.sources()}
    results = []
    for h in answer.hits:
        row = rows.get(h.source)
        results.append(
            {
                **asdict(h),
                "indexed_commit": row.indexed_commit if row else None,
                "stale": is_stale(
                    row.root if row else None, h.path, answer.indexed_as.get((h.source, h.path))
                ),
            }
        )
    return {
        "query": answer.query,
        "calibrated": answer.calibrated,
        "answerable": answer.answerable,
        "verdict": answer.verdict,
        "calibration": answer.calibration,
        "unknown_words": answer.unknown_words,
        "lookup": answer.lookup,
        # Sources not read whole (a first index or reindex under way, or stopped before
        # its end): results, unknown words and the verdict cover only the files read.
        "incomplete": sorted(n for n in (sources or rows) if n in rows and not rows[n].indexed_at),
        "pending": app.catalog.pending_count(sources or list(rows)),
        "degraded": answer.degraded,
        "results": results,
    }


def is_stale(root: Path | None, path: str, indexed_as: tuple[int, int] | None) -> bool:
    """Has the file changed on disk since the text a search returned was indexed?

    `indexed_as` is the file's (size, mtime_ns) read in the same snapshot as that text,
    not after it: the daemon may have indexed a newer version in between. One stat: cheap.
    """
    if root is None or indexed_as is None:
        return True
    try:
        st = os.stat(root / path)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != indexed_as


def read(
    app: App, source: str, path: str, start_line: int | None = None, end_line: int | None = None
) -> dict:
    return asdict(
        read_file(app.catalog, source, path, start_line, end_line, app.settings.max_file_bytes)
    )


def _head(root: Path) -> str | None:
    return rev_parse(root, "-q", "--verify", "HEAD", timeout=5) or None


def sources(app: App) -> list[dict]:
    return [
        {
            "name": r.name,
            "kind": r.kind,
            "root": str(r.root),
            **app.catalog.counts(r.name),
            "indexed_commit": r.indexed_commit,
            "indexed_at": r.indexed_at,
            "reconciled_at": r.reconciled_at,
            "interrupted": r.dirty,
        }
        for r in app.catalog.sources()
    ]


def status(app: App, skipped: bool = False, with_hooks: bool = False) -> dict:
    """Freshness per source; `with_hooks` adds each repository's installed hooks (a few
    git calls per source: for the terminal, not for an agent's every status call)."""
    rows = sources(app)
    for row in rows:
        root, git_source = Path(row["root"]), row["kind"] == "git"
        row["head"] = _head(root) if git_source else None
        if with_hooks:
            row["hooks"] = _hooks_of(root, app.settings.home) if git_source else None
        row["calibration_problem"] = app.calibrations.problem(row["name"])
    data: dict[str, Any] = {
        "home": str(app.settings.home),
        "model": app.embedder.model_id,
        "store": store(app),
        "daemon": None,
        "degraded": [r for r in [low_space(app.settings.home)] if r],
        "sources": rows,
    }
    if skipped:
        data["skipped"] = [
            {"source": a, "path": b, "reason": c} for a, b, c in app.catalog.skipped()
        ]
    return data


def store(app: App, check: bool = False) -> dict[str, Any]:
    """Which vector store is in use; for a server, whether it answers contextd now.
    `check` opens the store (which rebuilds a damaged embedded collection) and reports
    what had to be rebuilt, if anything."""
    info = remote.describe(app.settings)
    if check:
        _ = app.store
    info["repaired"] = app.store_repair
    opened = app.__dict__.get("store")
    if opened is not None:
        info["collection"] = opened.collection.name
    if info["kind"] == "server":
        try:
            remote.probe(app.settings, remote.read_token(app.settings), timeout=3.0)
            info |= {"reachable": True, "problem": None}
        except ContextdError as exc:
            info |= {"reachable": False, "problem": str(exc)}
    needed = app.reindex_needed()
    if needed:
        info["problem"] = needed
    return info


def verify(app: App, repair: bool = False) -> dict[str, dict[str, int]]:
    """Per source: chunks the catalog says are stored and the store lacks (lost), vectors
    with no chunk row (orphan), chunks stored twice (duplicate), and chunks waiting to be
    embedded (pending, searchable lexically). `repair` sweeps the mismatches away."""
    report = {}
    for row in app.catalog.sources():
        catalog_ids = app.catalog.chunk_ids(row.name)
        embedded = app.catalog.embedded_ids(row.name)
        entries = app.store.entries(row.name)
        stored = [i for i, _ in entries]
        keys = [
            (m.get("path"), m.get("start_line"), m.get("end_line"), m.get("hash"))
            for _, m in entries
        ]
        report[row.name] = {
            "chunks": len(catalog_ids),
            "pending": len(catalog_ids - embedded),
            "lost": len(embedded - set(stored)),
            "orphan": len(set(stored) - catalog_ids),
            "duplicate": (len(stored) - len(set(stored))) + (len(keys) - len(set(keys))),
        }
        if repair and (report[row.name]["lost"] or report[row.name]["orphan"]):
            app.indexer.sweep(row.name)
    return report


def leftovers(app: App, repair: bool = False) -> dict[str, Any]:
    """What the store holds that no source uses: vectors of sources the catalog no longer
    names (by source), and collections of another model or chunker version (by name).
    `repair` deletes them (the catalog needs none of it)."""
    with app.indexer.write_lock:  # no source's vectors land meanwhile
        names = [r.name for r in app.catalog.sources()]
        stray, collections = app.store.leftovers(names)
        # A catalog with no sources at all may be one started afresh whose list was lost:
        # its vectors are kept until a source is added again (or a reindex drops them).
        if repair and names:
            app.store.delete([i for ids in stray.values() for i in ids])
            for name in collections:
                app.store.drop_collection(name)
        cache = app.catalog.unused_vectors(drop=repair and bool(names))
    return {
        "vectors": {source: len(ids) for source, ids in stray.items()},
        "collections": collections,
        "cache": cache,  # cached vectors no chunk holds: counted, or dropped with repair
        "removed": repair and bool(names),
        "no_sources": not names,  # so kept whatever `repair` says
    }


def run(app: App, op: str, args: dict[str, Any], progress: Progress | None = None) -> Any:
    """Dispatch one operation by name (the daemon's socket and the in-process path)."""
    if op == "add":
        return add(app, args["path"], args.get("name"), args.get("hooks", True))
    if op == "remove":
        return remove(app, args["source"])
    if op == "index":
        return index(app, args.get("sources"), progress, bool(args.get("embed", True)))
    if op == "reindex":
        embed, take_over = bool(args.get("embed", True)), bool(args.get("take_over"))
        return reindex(app, progress, embed, take_over)
    if op == "search":
        return search(
            app,
            args["query"],
            int(args.get("k", 8)),
            args.get("sources"),
            args.get("path_glob"),
            args.get("language"),
            bool(args.get("files", False)),
            bool(args.get("confidence", True)),
        )
    if op == "sources":
        return sources(app)
    if op == "read":
        return read(app, args["source"], args["path"], args.get("start_line"), args.get("end_line"))
    if op == "status":
        return status(app, bool(args.get("skipped")), bool(args.get("hooks")))
    if op == "store":
        return store(app, bool(args.get("check")))
    if op == "verify":
        return verify(app, bool(args.get("repair")))
    if op == "leftovers":
        return leftovers(app, bool(args.get("repair")))
    raise ContextdError(
        f"Unknown operation '{op}'. Is the daemon a different version? "
        "Run `contextd stop`, then `contextd start`."
    )
