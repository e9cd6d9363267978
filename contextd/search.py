"""Hybrid retrieval: dense (Chroma) and lexical (FTS5) candidates, scored together.

Each candidate from either side gets both signals: its exact cosine to the query (the
vector comes from the embedding cache) and its BM25 relative to the query's best lexical
match. The score is the cosine plus a bounded lexical bonus, so a chunk that names what
was asked (`resolve_redirects` for "redirects") rises without lexical noise swamping
meaning. Issue 5 replaces this fixed blend with a fitted, calibrated one.
"""

from __future__ import annotations

import re
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from contextd.app import App
from contextd.errors import ContextdError
from contextd.lexical import looks_like_identifier, query_terms
from contextd.records import Hit

POOL = 50  # candidates drawn from each side
MAX_POOL = 1000
LEX_WEIGHT = 0.15
# A query that is one identifier-like token, or that has a term found in very few chunks
# (an identifier, an error string), says what the user wants better than meaning does:
# lexical evidence then weighs much more.
RARE_DF = 3
RARE_LEX_WEIGHT = 0.6
# Implementation before tests and changelogs, unless the query asks for those: they
# mention everything the code does, and an agent asking "how does X work" wants the code.
SECONDARY_PATH = re.compile(
    r"(^|/)(tests?|spec|testing)/|(^|/)test_[^/]*$|_test\.[a-z]+$|(^|/)conftest\.py$"
    r"|(^|/)(history|changelog|changes|news)(\.[a-z]+)?$",
    re.IGNORECASE,
)
SECONDARY_TERMS = frozenset(
    {
        "test",
        "tests",
        "testing",
        "spec",
        "changelog",
        "history",
        "news",
        "changes",
        "release",
        "fixture",
    }
)
SECONDARY_PENALTY = 0.1
# Windows of one definition are one result: its best window, plus a little per extra
# window that also matched (up to three).
WINDOW_BONUS = 0.02


def _where(sources: list[str] | None, language: str | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if sources:
        clauses.append(
            {"source": sources[0]} if len(sources) == 1 else {"source": {"$in": sources}}
        )
    if language:
        clauses.append({"language": language})
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
    """Hybrid search; the catalog is read as one snapshot while the daemon may be writing."""
    with app.catalog.snapshot():
        query = query.strip()
        if not query:
            raise ContextdError("The query is empty. Say what you are looking for.")
        if k < 1:
            raise ContextdError("-k must be at least 1.")
        for name in sources or []:
            app.catalog.source(name)  # raises "No source named ..." with the next command
        if not app.catalog.sources():
            raise ContextdError(
                "Nothing is indexed yet. Run `contextd add PATH`, then `contextd index`."
            )
        language = language.lower() if language else None
        pool = min(MAX_POOL, max(POOL, k * (20 if path_glob else 5)))
        vector = app.embedder.embed([query])[0]

        found: dict[str, Hit] = {}
        for h in app.store.query(vector, pool, _where(sources, language)):
            m = h.metadata
            found[h.id] = Hit(
                source=str(m.get("source", "")),
                path=str(m.get("path", "")),
                start_line=int(m.get("start_line", 0)),
                end_line=int(m.get("end_line", 0)),
                symbol=str(m.get("symbol", "")),
                language=str(m.get("language", "")),
                score=0.0,
                text=h.document,
                dense=1.0 - h.distance,
            )

        terms = query_terms(query)
        lexical = app.catalog.lexical(terms, pool, sources, language)
        exact = looks_like_identifier(query) or any(
            0 < app.catalog.document_frequency(t) <= RARE_DF for t in terms[:8]
        )
        lex_weight = RARE_LEX_WEIGHT if exact else LEX_WEIGHT
        best = max((s for _, s in lexical), default=0.0)
        extra = [i for i, _ in lexical if i not in found]
        stored = app.catalog.chunks(extra)
        vectors = app.catalog.cached_vectors(app.embedder.model_id, (s.chunk.hash for s in stored))
        for s in stored:
            c = s.chunk
            v = vectors.get(c.hash)
            cosine = float(np.dot(v, vector)) if v is not None else 0.0
            found[s.id] = Hit(
                s.source,
                c.path,
                c.start_line,
                c.end_line,
                c.symbol,
                c.language,
                0.0,
                c.text,
                dense=cosine,
            )
        for chunk_id, score in lexical:
            if chunk_id in found:  # a chunk the vector store no longer has is passed over
                found[chunk_id] = replace(
                    found[chunk_id], lexical=score / best if best > 0 else 0.0
                )

        penalise = not SECONDARY_TERMS & set(terms)
        groups: dict[tuple[str, str, str | int], list[tuple[float, Hit]]] = {}
        for hit in found.values():
            if path_glob and not fnmatchcase(hit.path, path_glob):
                continue
            score = hit.dense + lex_weight * hit.lexical
            if penalise and SECONDARY_PATH.search(hit.path):
                score -= SECONDARY_PENALTY
            key = (hit.source, hit.path, hit.symbol or hit.start_line)
            groups.setdefault(key, []).append((score, hit))
        hits = []
        for windows in groups.values():
            windows.sort(key=lambda sc: -sc[0])
            score, best_window = windows[0]
            score += WINDOW_BONUS * min(len(windows) - 1, 3)
            hits.append(
                replace(
                    best_window,
                    score=round(score, 4),
                    dense=round(best_window.dense, 4),
                    lexical=round(best_window.lexical, 4),
                )
            )
        hits.sort(key=lambda h: -h.score)
        return hits[:k]
