"""Dense retrieval over the vector store, with source, language and path filters."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from contextd.app import App
from contextd.errors import ContextdError
from contextd.records import Hit

MAX_FETCH = 1000


def _where(sources: list[str] | None, language: str | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if sources:
        clauses.append({"source": sources[0]} if len(sources) == 1 else {"source": {"$in": sources}})
    if language:
        clauses.append({"language": language.lower()})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def search(
    app: App,
    query: str,
    k: int = 8,
    sources: list[str] | None = None,
    path_glob: str | None = None,
    language: str | None = None,
) -> list[Hit]:
    query = query.strip()
    if not query:
        raise ContextdError("The query is empty. Say what you are looking for.")
    if k < 1:
        raise ContextdError("-k must be at least 1.")
    for name in sources or []:
        app.catalog.source(name)  # raises "No source named ..." with the next command
    if not app.catalog.sources():
        raise ContextdError("Nothing is indexed yet. Run `contextd add PATH`, then `contextd index`.")
    vector = app.embedder.embed([query])[0]
    where = _where(sources, language)
    fetch = min(MAX_FETCH, k * 20) if path_glob else k
    hits = []
    for h in app.store.query(vector, fetch, where):
        path = str(h.metadata.get("path", ""))
        if path_glob and not fnmatchcase(path, path_glob):
            continue
        hits.append(
            Hit(
                source=str(h.metadata.get("source", "")),
                path=path,
                start_line=int(h.metadata.get("start_line", 0)),
                end_line=int(h.metadata.get("end_line", 0)),
                symbol=str(h.metadata.get("symbol", "")),
                language=str(h.metadata.get("language", "")),
                score=round(1.0 - h.distance, 4),
                text=h.document,
            )
        )
    return hits[:k]
