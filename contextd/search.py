"""Hybrid retrieval with calibrated confidence.

Candidates come from both sides: the nearest chunks in Chroma and the best BM25 matches
in the catalog's FTS5 index. Each candidate gets both signals (its exact cosine comes
from the embedding cache), windows of one definition become one result, and results are
ranked by a fused score: the cosine plus a bounded lexical bonus, weighted up when the
query is identifier-like or names something rare. A query of one word is a lookup: the
word's definitions first, then what holds it, and `found` when the top results hold it.

With a calibration for the embedding model (see `contextd.confidence`), every result
also carries `confidence`, the probability that it is relevant, and the answer carries
`answerable`, the probability that the top results hold the answer, with a verdict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

import numpy as np
import pathspec

from contextd import redaction
from contextd.app import App
from contextd.confidence import ANSWER_K, HIT_FEATURES, QUERY_FEATURES, logit
from contextd.errors import STORE_NOT_NOW, ContextdError, DiskFull, StoreUnavailable
from contextd.hygiene import plain
from contextd.indexers import language_of
from contextd.lexical import (
    WORD,
    identifier_parts,
    looks_like_identifier,
    query_terms,
    token_set,
)
from contextd.records import Hit

POOL = 200  # candidates drawn from each side; confidence always looks at this many
MAX_POOL = 1000
# At most this many files a narrow glob's search is drawn among: the store's `$in` filter
# costs time with every path (1,788 paths took 140 ms on the stdlib index).
GLOB_PATHS = 200
FEATURED = 40  # results whose features are computed (confidence, answerable)
EMBED_NOW = 8  # lexical candidates without a vector yet, embedded at query time
LEX_WEIGHT = 0.15
# A query that is one identifier-like token, or names code found in very few chunks,
# says what the user wants better than meaning does: lexical evidence then weighs more.
RARE_DF = 3
RARE_LEX_WEIGHT = 0.6
# A query of one word is a lookup: the results that hold it come first (a fused score
# is a cosine plus at most RARE_LEX_WEIGHT, so this puts them above all the rest).
LOOKUP_BONUS = 2.0
# Implementation before tests and changelogs, unless the query asks for those: they
# mention everything the code does, and an agent asking "how does X work" wants the code.
TEST_PATH = re.compile(  # pytest's, Go's, and JavaScript's (jest, mocha, vitest) ways
    r"(^|/)(tests?|spec|testing|__tests__)/|(^|/)test_[^/]*$|_test\.[a-z]+$"
    r"|\.(test|spec)\.[a-z]+$|(^|/)conftest\.py$",
    re.IGNORECASE,
)
SECONDARY_PATH = re.compile(
    rf"{TEST_PATH.pattern}|(^|/)(history|changelog|changes|news|release[-_]?notes"
    r"|releases|whats[-_]?new)(\.[a-z]+)?$",
    re.IGNORECASE,
)
RUST_TEST_MODULE = re.compile(r"tests?(?:\.|$)")  # `mod tests` and what it holds
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
DOC_PATH = re.compile(r"(^|/)(docs?|documentation)/|\.(md|markdown|rst|txt|adoc)$", re.I)
TEST_SUBJECT = re.compile(r"(?:^|/)test_([^/]+?)\.[a-z]+$|(?:^|/)([^/]+?)_test\.[a-z]+$", re.I)
# Windows of one definition are one result: its best window, plus a little per extra
# window that also matched (up to three).
WINDOW_BONUS = 0.02
MODES = ("hybrid", "dense", "lexical")
# The store cannot be asked now, but the keyword index can (marked `degraded`).
KEYWORDS_ANSWER: tuple[type[Exception], ...] = (*STORE_NOT_NOW, DiskFull)
MAX_GLOB = 500


@dataclass
class Answer:
    """Results of one query, and how sure contextd is of them."""

    query: str
    hits: list[Hit]
    calibrated: bool
    answerable: float | None = None  # P(the top ANSWER_K results hold the answer)
    verdict: str = "uncertain"  # found | uncertain | not_found
    calibration: str = ""  # what the calibration was fitted on
    unknown_words: list[str] = field(default_factory=list)  # in no indexed chunk at all
    lookup: str | None = None  # the one word asked, held by the top results: found
    degraded: str | None = None  # the vector store could not be asked: keyword results only
    # (size, mtime_ns) of each hit's file as indexed, read with the hits: what `stale` checks
    indexed_as: dict[tuple[str, str], tuple[int, int] | None] = field(default_factory=dict)
    # For evaluation and fitting: the features behind every confidence.
    hit_features: np.ndarray = field(default_factory=lambda: np.zeros((0, len(HIT_FEATURES))))
    query_features: np.ndarray = field(default_factory=lambda: np.zeros(len(QUERY_FEATURES)))
    feature_paths: list[str] = field(default_factory=list)  # the file of each feature row
    confidences: np.ndarray = field(default_factory=lambda: np.zeros(0))  # of each row


@dataclass
class _Candidate:
    hit: Hit  # its `score` and `lexical` are set when ranked
    bm25: float = 0.0
    lexical: float = 0.0  # BM25 relative to the best lexical match of the query (0..1)
    dense_side: bool = False
    lexical_side: bool = False
    dense_rank: int = MAX_POOL  # its place on each side (MAX_POOL: not drawn there)
    lexical_rank: int = MAX_POOL


def _within(candidates: list[_Candidate], pool: int) -> list[_Candidate]:
    """The candidates a search drawing `pool` from each side would have had, as it would
    have seen them: a deeper draw must not change what the confidence features describe
    (`answerable` would then vary with -k and --files, and `eval` measure another thing)."""
    out = []
    for c in candidates:
        dense, lexical = c.dense_rank < pool, c.lexical_rank < pool
        if dense or lexical:
            bm25, relative = (c.bm25, c.lexical) if lexical else (0.0, 0.0)
            out.append(_Candidate(c.hit, bm25, relative, dense_side=dense, lexical_side=lexical))
    return out


def _where(
    sources: list[str] | None, languages: list[str] | None, paths: list[str] | None = None
) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if paths is not None:
        clauses.append({"path": {"$in": paths}})
    if sources:
        clauses.append(
            {"source": sources[0]} if len(sources) == 1 else {"source": {"$in": sources}}
        )
    if languages:
        clauses.append(
            {"language": languages[0]} if len(languages) == 1 else {"language": {"$in": languages}}
        )
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@lru_cache(maxsize=1 << 16)
def stem(token: str) -> str:
    """A crude stem, enough to match "redirects" with "redirect" when measuring coverage."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(token) > len(suffix) + 3 and token.endswith(suffix):
            return token[: -len(suffix)]
    return token


def search(
    app: App,
    query: str,
    k: int = 8,
    sources: list[str] | None = None,
    path_glob: str | None = None,
    language: str | None = None,
    mode: str = "hybrid",
    files: bool = False,
    confidence: bool = True,
) -> Answer:
    """Hybrid search; the catalog is read as one snapshot while the daemon may be writing."""
    degraded = None
    if mode != "lexical":
        try:
            _ = app.store  # opened first: opening it may write to the catalog (a switch)
        except KEYWORDS_ANSWER as exc:  # the keyword index still answers
            degraded = str(exc)
    with app.catalog.snapshot():
        query = plain(query).strip()  # what it shows: "\x00" or "\x1b[0m" is no question
        if not query:
            raise ContextdError("The query is empty. Say what you are looking for.")
        if k < 1:
            raise ContextdError("-k must be at least 1.")
        if mode not in MODES:
            raise ContextdError(f"Unknown mode '{mode}'. Use one of: {', '.join(MODES)}.")
        for name in sources or []:
            app.catalog.source(name)  # raises "No source named ..." with the next command
        known = [r.name for r in app.catalog.sources()]
        if not known:
            raise ContextdError(
                "Nothing is indexed yet. Run `contextd add PATH`, then `contextd index`."
            )
        languages = _known_language(app, language) if language else None
        pool = min(MAX_POOL, max(POOL, k * (20 if path_glob or files else 5)))
        terms = query_terms(query)

        vector = app.embedder.embed([query])[0]  # once, however many draws

        def draw(paths: list[str] | None = None) -> list[_Candidate]:
            nonlocal degraded
            use_store = not degraded
            try:
                return _candidates(app, vector, terms, pool, sources, languages, use_store, paths)
            except StoreUnavailable as exc:  # the server went away: the keyword index is here
                degraded = str(exc)
                return _candidates(app, vector, terms, pool, sources, languages, False, paths)

        candidates = draw()
        if path_glob:
            matches = path_matcher(path_glob)
            kept = [c for c in candidates if matches(c.hit.path)]
            if len(kept) < POOL // 2:  # a narrow glob: draw again among its files alone
                paths = _glob_paths(app, matches, sources or known)
                if paths == []:  # None: too many to draw among, not none
                    raise _glob_matches_nothing(path_glob)
                if paths is not None:
                    kept = [c for c in draw(paths) if matches(c.hit.path)]
            candidates = kept
        elif named := _named_files(app, query, sources or known):
            candidates = draw(named)  # a file asked for by its path: that file's chunks
        # A query of one word or name that some result holds is looked up, whatever its
        # shape ("pathsend"). Else a lone word found in very few chunks weighs keywords up
        # ("zqkkdj"); in a question, a rare English word is no name the user knows is there.
        word = _looked_up(query) if mode == "hybrid" else None  # the parts alone: as asked
        holds = _holder(word) if word else None
        if holds and not any(holds(c.hit) for c in candidates):
            word = holds = None
        lone = WORD.findall(query)
        exact = (
            looks_like_identifier(query)
            or holds is not None
            or any(
                0 < app.catalog.document_frequency(t) <= RARE_DF
                for t in (_code_terms(query)[:8] if len(lone) > 1 else query_terms(query)[:8])
            )
        )
        weight = RARE_LEX_WEIGHT if exact else LEX_WEIGHT
        # The featured results (and so confidence and `answerable`) always come from the
        # same draw, whatever -k or --files asked for; a deeper draw only adds results.
        definitions = _definitions(app, candidates)
        ranked = _rank(_within(candidates, POOL), terms, mode, weight, definitions, word, holds)
        deeper = (
            _rank(candidates, terms, mode, weight, definitions, word, holds) if pool > POOL else []
        )

        # Without the store's nearest chunks the features are not what was calibrated.
        calibrate = confidence and degraded is None
        cal = app.calibrations.for_sources(sources or known) if calibrate else None
        answer = Answer(query, [], calibrated=cal is not None, degraded=degraded)
        answer.unknown_words = unknown_words(app, query, sources, languages)
        top = ranked[:FEATURED]
        # A word looked up that the top results hold is found: a fact, not an estimate.
        if holds and not answer.unknown_words and any(holds(h) for _, h in top[:ANSWER_K]):
            answer.lookup = word
        if top and confidence:
            weights = _term_weights(app, terms)
            asks_secondary = bool(SECONDARY_TERMS & set(terms))
            answer.hit_features = _hit_features(top, weights, asks_secondary)
            answer.feature_paths = [h.path for _, h in top]
            hit = cal.hit.predict(answer.hit_features) if cal is not None else None
            answer.query_features = _query_features(app, query, top, weights, hit)
        # A name asked alone that no indexed text holds is not there: a fact, as a lookup is.
        absent = looks_like_identifier(query) and bool(answer.unknown_words)
        if cal is not None:
            p = float(cal.answerable.predict(answer.query_features[None, :])[0]) if top else 0.0
            p = 1.0 if answer.lookup else 0.0 if absent else p
            answer.answerable = round(p, 4)
            answer.verdict = cal.verdict(p)
            answer.calibration = cal.origin
        if cal is not None and top:
            conf = cal.confidence(p, answer.hit_features)
            # The fitted model is the fusion: files come in the order of their results'
            # confidence. It was fitted on which files answer, so within a file it sees
            # little but the chunk's names: the fused score orders a file's chunks.
            order, surest = np.arange(len(top)), conf
            if cal.rerank:
                order, surest = dealt(conf, [(h.source, h.path) for _, h in top])
            top = [
                (top[i][0], replace(top[i][1], confidence=round(float(c), 4)))
                for i, c in zip(order, surest, strict=True)
            ]
            answer.hit_features = answer.hit_features[order]
            answer.feature_paths = [answer.feature_paths[i] for i in order]
            answer.confidences = surest
        hits = [h for _, h in top] + [h for _, h in ranked[FEATURED:]]
        shown = {_key(h, definitions) for h in hits}
        hits += [h for _, h in deeper if _key(h, definitions) not in shown]
        if word and holds:  # a word looked up: its definitions, then its other mentions
            hits = [replace(h, match=holds(h)) for h in hits]
            hits.sort(key=lambda h: MATCHES.index(h.match))
        if answer.lookup and cal is None:
            answer.answerable, answer.verdict = 1.0, "found"
        elif absent and cal is None:
            answer.answerable, answer.verdict = 0.0, "not_found"
        answer.hits = _by_file(hits, k) if files else _merge_overlaps(hits)[:k]
        for h in answer.hits:
            state = app.catalog.file_state(h.source, h.path)
            answer.indexed_as[h.source, h.path] = (state.size, state.mtime_ns) if state else None
        return answer


DOUBLE_STAR = re.compile(r"(?:^|(?<=/))\*\*/")
MAX_ZERO_FOLDERS = 4  # `**/` read as possibly no folder: 2^4 patterns at most


def path_matcher(glob: str) -> Callable[[str], bool]:
    """A path filter that takes a glob as people write it: shell style (`src/*` takes
    everything below src/), or gitignore style (`**/*.py` includes the root, a bare
    `test_*.py` or a folder name matches at any depth); a leading `./` is dropped.

    Matching is fnmatch's alone, on the path and each of its folders: its patterns do not
    backtrack. (pathspec's regexes do: `*x*x*x*x*x*Z` took half a second per path, and
    an agent's glob is checked against every indexed path when nothing matched.)"""
    glob = glob.strip()
    if len(glob) > MAX_GLOB:  # reading it took time that grows with its square
        raise ContextdError(f"The path glob is {len(glob)} characters; at most {MAX_GLOB}.")
    while glob.startswith("./"):
        glob = glob[2:]
    try:
        pathspec.PathSpec.from_lines("gitwildmatch", [glob])  # only to refuse what git would
    except ValueError as exc:  # a pattern git cannot read, e.g. a trailing backslash
        raise ContextdError(f"The path glob '{glob}' is not valid ({exc}).") from None
    pattern = glob.rstrip("/")
    anchored = "/" in pattern  # as in .gitignore: with a slash, from the root only
    pattern = pattern.lstrip("/")
    variants = _zero_folder_variants(pattern)

    def matches(path: str) -> bool:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):  # the file, or a folder holding it
            here, name = "/".join(parts[:depth]), parts[depth - 1]
            for v in variants:
                if fnmatchcase(here, v) or (not anchored and fnmatchcase(name, v)):
                    return True
        return False

    return matches


def _zero_folder_variants(pattern: str) -> list[str]:
    """The pattern, and each way its `**/` may stand for no folder at all, as in
    gitignore: `a/**/b` is also `a/b`, and `**/x` is also `x`."""
    head, *rest = DOUBLE_STAR.split(pattern)  # `**/` as a whole folder only (`a**/` is not)
    variants = [head]
    for piece in rest[:MAX_ZERO_FOLDERS]:
        variants = [v + more for v in variants for more in (f"**/{piece}", piece)]
    tail = "".join(f"**/{piece}" for piece in rest[MAX_ZERO_FOLDERS:])
    return list(dict.fromkeys(v + tail for v in variants))


def _glob_paths(app: App, matches: Callable[[str], bool], sources: list[str]) -> list[str] | None:
    """The indexed paths a glob takes in, or None for more than GLOB_PATHS (a broad glob,
    which the first draw serves well enough)."""
    paths: set[str] = set()
    for name in sources:
        paths.update(p for p in app.catalog.indexed_paths(name) if matches(p))
        if len(paths) > GLOB_PATHS:
            return None
    return sorted(paths)


PATH_QUERY = re.compile(r"[\w.@+-]+(/[\w.@+-]+)+|[\w@+-][\w.@+-]*\.[A-Za-z0-9]{1,10}")
NAMED_FILES = 5  # a path that names more files than this is a pattern, not a file


def _named_files(app: App, query: str, sources: list[str]) -> list[str] | None:
    """The indexed files a query that is a path names (`src/flask/ctx.py`, `ctx.py`):
    their path is it, or ends with it after a `/`. Its words (src, flask, py) are in
    nearly every path, so ranked as words they picked another file, even with `found`."""
    q = query.strip().strip("`'\"").removeprefix("./")
    if not PATH_QUERY.fullmatch(q):
        return None
    named = app.catalog.paths_ending(sources, q, NAMED_FILES + 1)
    return named if 0 < len(named) <= NAMED_FILES else None


def _glob_matches_nothing(glob: str) -> ContextdError:
    """Nothing found under a glob that no indexed file matches says so: `not_found` would
    tell an agent the index lacks the answer, when the glob was what went wrong."""
    return ContextdError(
        f"No indexed file matches the path glob '{glob}'. Paths are relative to a source's "
        "root, as results show them (`src/*`, `**/*.py`, `docs`); braces are not expanded."
    )


NAME_CHECK_LIMIT = 20  # chunks whose text is searched for a name seen only inside others
LANGUAGE_ALIASES = {"c++": "cpp", "golang": "go", "js": "javascript", "ts": "typescript"}
# A language asked for takes in its kin (`--lang typescript` takes .tsx, `yaml` takes .yml).
LANGUAGE_KIN = {
    "typescript": ("tsx",),
    **{a: (b,) for a, b in (("yaml", "yml"), ("yml", "yaml"), ("html", "htm"), ("htm", "html"))},
    **{a: (b,) for a, b in (("sh", "bash"), ("bash", "sh"))},
}


def _known_language(app: App, name: str) -> list[str]:
    """The languages as the index names them (`py` and `.py` are python, `ts` is also
    tsx), or a ContextdError that lists the languages there are."""
    raw = name.strip().lower().lstrip(".")
    for language in (raw, LANGUAGE_ALIASES.get(raw), language_of(f"x.{raw}")):
        if not language:
            continue
        found = [
            x for x in (language, *LANGUAGE_KIN.get(language, ())) if app.catalog.has_language(x)
        ]
        if found:
            return found
    there = ", ".join(app.catalog.languages())
    raise ContextdError(f"No indexed file is in language '{name}'. The index has: {there}.")


# English glue words beyond the index's stopwords: absent from code, and never the point.
# fmt: off
FILLER = frozenset({
    "about", "above", "across", "after", "again", "all", "also", "any", "around", "back",
    "before", "below", "between", "both", "each", "either", "else", "ever", "every", "few",
    "here", "just", "like", "more", "most", "much", "must", "need", "no", "nor", "not", "now",
    "off", "once", "one", "only", "other", "out", "over", "own", "same", "since", "some",
    "still", "such", "through", "too", "two", "under", "until", "up", "upon", "very", "via",
    "whether", "within", "without",
})
# fmt: on


def unknown_words(
    app: App,
    query: str,
    sources: list[str] | None = None,
    languages: list[str] | None = None,
) -> list[str]:
    """The query's words that no indexed chunk (of `sources` and `languages`, when given)
    contains: what to drop or rephrase.

    An identifier counts as present only whole (`parse_url_v2` is unknown even where
    "parse" and "url" are common), each part of a dotted name on its own; any other word
    when one of its terms is present. A word the secret scanner would redact is never
    listed: the answer must not carry a key back, even one the caller typed.
    """
    absent: dict[str, bool] = {}  # a repeated word is looked up once
    secret: list[tuple[int, int]] | None = None  # scanned only once a word is unknown
    out: list[str] = []
    for m in WORD.finditer(query):
        word = m.group()
        if word in out:
            continue
        if word not in absent:
            absent[word] = _in_no_chunk(app, word, sources, languages)
        if not absent[word]:
            continue
        if secret is None:
            secret = _secret_spans(query)
        if not any(s < m.end() and m.start() < e for s, e in secret):
            out.append(word)
    return out


def _secret_spans(query: str) -> list[tuple[int, int]]:
    """Where the query holds something the secret scanner would redact: in context, and
    runs between spaces shaped like a key (`AbC9/x+Yz...`) on their own."""
    spans = [(f.start, f.end) for f in redaction.find(query)]
    runs = re.finditer(r"\S+", query)
    return spans + [r.span() for r in runs if redaction.looks_like_secret(r[0])]


def _in_no_chunk(
    app: App, word: str, sources: list[str] | None, languages: list[str] | None
) -> bool:
    """No indexed chunk holds the word (each part of a dotted name judged alone)."""
    return any(not _in_some_chunk(app, part, sources, languages) for part in word.split("."))


def _in_some_chunk(
    app: App, part: str, sources: list[str] | None, languages: list[str] | None
) -> bool:
    if not looks_like_identifier(part):
        terms = [t for t in query_terms(part) if not t.isdigit() and t not in FILLER]
        return not terms or any(app.catalog.holds(t, sources, languages) for t in terms)
    # A name counts whole. Inside a longer dotted name (`self.max_retry_delay`) it is no
    # token of its own, but its pieces follow that token in a row: a phrase finds chunks
    # that may hold it, and the name is looked for in their text, between non-word
    # characters (not `max_retry_delay_s`, nor `max retry delay` in prose).
    if app.catalog.holds(part.lower(), sources, languages):
        return True
    pieces = identifier_parts(part)
    if len(pieces) < 2:
        return False
    phrase = [" ".join(pieces)]
    ids = [i for i, _ in app.catalog.lexical(phrase, NAME_CHECK_LIMIT, sources, languages)]
    whole = _whole_word(part, re.IGNORECASE)
    return any(whole.search(s.chunk.text) for s in app.catalog.chunks(ids))


def _whole_word(word: str, flags: int = 0) -> re.Pattern[str]:
    """`word` between non-word characters: not `max_retry_delay` in `max_retry_delay_s`."""
    return re.compile(rf"(?<![\w]){re.escape(word)}(?![\w])", flags)


def _looked_up(query: str) -> str | None:
    """The word or name a one-word query looks up, as typed (`Session.send`,
    `Parser::parse`, `pathsend`), if it is one."""
    typed = query.strip().strip("`'\"()")
    words = WORD.findall(typed.replace("::", "."))
    if len(words) != 1 or not query_terms(words[0]):  # not "the"
        return None
    return typed if typed.replace("::", ".") == words[0] else words[0]


def _defines(hit: Hit, name: str) -> bool:
    """The result is a definition of `name`: `Session.send` defines `send`, and
    `TemplateNotFound` in src/jinja2/ defines `jinja2.TemplateNotFound` (a qualifier must
    name the file's folders or module: no `NoSuchModule.TemplateNotFound`). A chunk of
    small definitions has each one's symbol (`TemplateError, TemplateNotFound`)."""
    name = name.replace("::", ".")
    where = {p.lower() for p in re.split(r"[/.]", hit.path)}
    for s in filter(None, hit.symbol.replace("::", ".").split(", ")):
        if s == name or s.endswith(f".{name}"):
            return True
        qualifier = name[: -len(s) - 1] if name.endswith(f".{s}") else ""
        if qualifier and all(q.lower() in where for q in qualifier.split(".")):
            return True
    return "." not in name and _assigned(name).search(hit.text) is not None


@lru_cache(maxsize=64)
def _assigned(name: str) -> re.Pattern[str]:
    """A module's own assignment of `name`, at the start of a line, which the chunker
    names no symbol: `TIMEOUT = 30`, `TIMEOUT: int = 30`, `export const TIMEOUT = 30`,
    Go's `var TIMEOUT =`. Not `TIMEOUT == 30`, nor an indented (local) one."""
    return re.compile(
        rf"(?m)^(?:export[ \t]+)?(?:(?:const|let|var)[ \t]+)?{re.escape(name)}[ \t]*"
        r"(?::[^=\n]*)?=(?!=)"
    )


MATCHES = ("definition", "mention", None)  # a lookup's results, in this order


def _holder(name: str) -> Callable[[Hit], str | None]:
    """Does a result define the word looked up ("definition"), or hold it whole
    ("mention": `pathsend` in `http.response.pathsend`, not in `pathsender`)? None if
    neither, so the answer reads as yes or no too. Case counts when the word has a
    capital, as in ripgrep's smart case: `HttpConnection` is not `HTTPConnection`."""
    whole = _whole_word(name, 0 if any(c.isupper() for c in name) else re.IGNORECASE)
    seen: dict[tuple[str, str, int, int], str | None] = {}  # asked of a chunk up to 5 times

    def holds(hit: Hit) -> str | None:
        key = (hit.source, hit.path, hit.start_line, hit.end_line)
        if key not in seen:
            text = redaction.MARKED.sub("", hit.text)  # no author wrote `REDACTED` there
            seen[key] = (
                "definition"
                if _defines(hit, name)
                else "mention"
                if whole.search(text) is not None
                else None
            )
        return seen[key]

    return holds


def _code_terms(query: str) -> list[str]:
    """The query's words shaped like code (`super_len`, `parseURL`), as index terms.

    A rare English word ("iterable") is not a name the user knows is there: on CoSQA's
    web questions, weighing those lexically cost 1.2 points of MRR@10.
    """
    words = [w for w in dict.fromkeys(WORD.findall(query)) if looks_like_identifier(w)]
    return [t for w in words for t in query_terms(w)]


def _candidates(
    app: App,
    vector: np.ndarray,
    terms: list[str],
    pool: int,
    sources: list[str] | None,
    languages: list[str] | None,
    use_store: bool = True,
    paths: list[str] | None = None,
) -> list[_Candidate]:
    """Both sides' candidates (among `paths` alone, when given); without `use_store`, the
    keyword side's alone, still ranked by meaning through the embedding cache's vectors."""
    found: dict[str, _Candidate] = {}
    where = _where(sources, languages, paths)
    drawn = app.store.nearest(vector, pool, where) if use_store else []
    # The nearest neighbours are approximate (HNSW searches wider for a larger k): the
    # first POOL are asked for on their own, so confidence sees the same ones at any -k.
    first = drawn if pool <= POOL or not use_store else app.store.nearest(vector, POOL, where)
    nearest = dict(drawn) | dict(first)
    # A chunk the catalog no longer has (deleted while the query ran, or an orphan the
    # next reconcile sweeps) is not a result.
    for s in sorted(app.catalog.chunks(nearest), key=lambda s: nearest[s.id]):
        c = s.chunk
        dense = 1.0 - nearest[s.id]
        hit = Hit(
            s.source, c.path, c.start_line, c.end_line, c.symbol, c.language, 0.0, c.text, dense
        )
        found[s.id] = _Candidate(hit, dense_side=True)
    for rank, (chunk_id, _) in enumerate(first):  # nearest first
        if chunk_id in found:
            found[chunk_id].dense_rank = rank

    lexical = app.catalog.lexical(terms, pool, sources, languages, paths)
    best = max((s for _, s in lexical), default=0.0)
    extra = [i for i, _ in lexical if i not in found]
    stored = app.catalog.chunks(extra)
    vectors = app.catalog.cached_vectors(app.embedder.model_id, (s.hash for s in stored))
    # Chunks indexed moments ago wait for their vectors: the best few are embedded now,
    # so a file just edited ranks by meaning too (the rest rank by keyword alone).
    order = {chunk_id: rank for rank, (chunk_id, _) in enumerate(lexical)}
    waiting = [s for s in stored if s.hash not in vectors]
    unembedded = sorted(waiting, key=lambda s: order[s.id])[:EMBED_NOW]
    if unembedded:
        texts = {s.hash: s.chunk.embed_text for s in unembedded}
        vectors.update(zip(texts, app.embedder.embed(list(texts.values())), strict=True))
    for s in stored:
        c = s.chunk
        v = vectors.get(s.hash)
        cosine = float(np.dot(v, vector)) if v is not None else 0.0
        hit = Hit(
            s.source, c.path, c.start_line, c.end_line, c.symbol, c.language, 0.0, c.text, cosine
        )
        found[s.id] = _Candidate(hit)
    for rank, (chunk_id, score) in enumerate(lexical):
        cand = found.get(chunk_id)
        if cand is not None:  # a chunk the vector store no longer has is passed over
            cand.lexical = score / best if best > 0 else 0.0
            cand.bm25 = score
            cand.lexical_side = True
            cand.lexical_rank = rank
    return list(found.values())


Key = tuple[str, str, str | int, int]


def _key(hit: Hit, definitions: dict[tuple[str, str, str, int], int]) -> Key:
    """A definition (its windows are one result), or a chunk outside any."""
    at = definitions.get((hit.source, hit.path, hit.symbol, hit.start_line), 0)
    return (hit.source, hit.path, hit.symbol or hit.start_line, at)


def _definitions(app: App, candidates: list[_Candidate]) -> dict[tuple[str, str, str, int], int]:
    """Which definition each chunk belongs to, where a file's candidates share a name:
    the line where it begins.

    A definition's windows overlap, and only its own members (`Parser.parse` within
    `Parser`) come between the pieces of a split class. Two definitions with one name
    (Java overloads, a property's getter and setter, `impl Display for Point` after
    `struct Point`) meet without overlapping, or with something else between them.
    """
    named: dict[tuple[str, str], set[str]] = {}
    seen: set[tuple[str, str, str]] = set()
    last: dict[tuple[str, str], int] = {}  # a file's last candidate: no later chunk counts
    for c in candidates:
        key = (c.hit.source, c.hit.path, c.hit.symbol)
        if c.hit.symbol and key in seen:
            named.setdefault(key[:2], set()).add(c.hit.symbol)
        seen.add(key)
        last[key[:2]] = max(last.get(key[:2], 0), c.hit.start_line)
    out: dict[tuple[str, str, str, int], int] = {}
    for (source, path), symbols in named.items():
        begins: dict[str, int] = {}  # each shared name's current definition: its first line
        ends: dict[str, int] = {}  # the last line of the name's last chunk
        apart: set[str] = set()  # names with a chunk not their own since their last
        previous = None
        for start, end, symbol in app.catalog.spans(source, path, last[source, path]):
            apart.update(o for o in symbols if o != symbol and not symbol.startswith(f"{o}."))
            if symbol in symbols:
                if symbol not in begins or (
                    start > ends[symbol] and (previous == symbol or symbol in apart)
                ):
                    begins[symbol] = start  # not a window of the last: the next definition
                apart.discard(symbol)
                ends[symbol] = max(end, ends.get(symbol, end))
                out[source, path, symbol, start] = begins[symbol]
            previous = symbol
    return out


def _rank(
    candidates: list[_Candidate],
    terms: list[str],
    mode: str,
    lex_weight: float,
    definitions: dict[tuple[str, str, str, int], int],
    name: str | None = None,
    holds: Callable[[Hit], str | None] | None = None,
) -> list[tuple[_Candidate, Hit]]:
    """One result per definition (its best window, or where it begins when it defines
    the `name` looked up), best first, with its fused score; results that hold the word
    looked up come before those that do not."""
    penalise = not SECONDARY_TERMS & set(terms)
    groups: dict[Key, list[tuple[float, _Candidate]]] = {}
    for cand in candidates:
        hit = cand.hit
        if mode == "dense":
            score = hit.dense
        elif mode == "lexical":
            if not cand.lexical_side:
                continue
            score = cand.lexical
        else:
            score = hit.dense + lex_weight * cand.lexical
        if penalise and not is_primary(hit):
            score -= SECONDARY_PENALTY
        if holds is not None and holds(hit):
            score += LOOKUP_BONUS
        groups.setdefault(_key(hit, definitions), []).append((score, cand))
    ranked = []
    for windows in groups.values():
        windows.sort(key=lambda sc: -sc[0])
        score, best = windows[0]
        if name and _defines(best.hit, name):
            best = min((c for _, c in windows), key=lambda c: c.hit.start_line)
        score += WINDOW_BONUS * min(len(windows) - 1, 3)
        best.dense_side = any(c.dense_side for _, c in windows)
        best.lexical_side = any(c.lexical_side for _, c in windows)
        hit = replace(
            best.hit,
            score=round(score, 4),
            dense=round(best.hit.dense, 4),
            lexical=round(best.lexical, 4),
        )
        ranked.append((best, hit))
    ranked.sort(key=lambda ch: -ch[1].score)
    return ranked


def _term_weights(app: App, terms: list[str]) -> dict[str, tuple[float, int, int]]:
    """Each query term's IDF weight, document frequency, and frequency in names."""
    total = app.catalog.chunk_count()
    out = {}
    for t in terms[:12]:
        df = app.catalog.document_frequency(t)
        names = app.catalog.name_frequency(t) if df else 0
        out[t] = (math.log((total + 1) / (df + 1)) + 1.0, df, names)
    return out


def _coverage(weights: dict[str, tuple[float, int, int]], held: set[str]) -> float:
    """The share of the terms' weight whose stems are `held`."""
    total = sum(w for w, *_ in weights.values())
    if total <= 0:
        return 0.0
    return sum(w for t, (w, *_) in weights.items() if stem(t) in held) / total


def _held(weights: dict[str, tuple[float, int, int]], *texts: str) -> set[str]:
    """The stems of the weighted terms that are stems of tokens of `texts`. A token is a
    piece of its text, so only the words holding such a stem are split."""
    out: set[str] = set()
    for text in texts:
        lowered = text.lower()
        wanted = {s for s in map(stem, weights) if s in lowered} - out
        if wanted:
            out |= wanted.intersection(map(stem, token_set(text, wanted)))
    return out


def _hit_features(
    ranked: list[tuple[_Candidate, Hit]], weights: dict, asks_secondary: bool
) -> np.ndarray:
    best_dense = max(h.dense for _, h in ranked)
    best_score = ranked[0][1].score
    file_rank: dict[tuple[str, str], int] = {}
    rows = []
    for i, (cand, hit) in enumerate(ranked):
        fr = file_rank.setdefault((hit.source, hit.path), len(file_rank))
        names = _held(weights, hit.path, hit.symbol)
        rows.append(
            [
                hit.dense,
                best_dense - hit.dense,
                hit.lexical,
                math.log1p(cand.bm25),
                best_score - hit.score,
                math.log1p(i),
                math.log1p(fr),
                _coverage(weights, names | _held(weights, hit.text)),
                _coverage(weights, names),
                float(cand.dense_side and cand.lexical_side),
                float(not asks_secondary and not is_primary(hit)),
            ]
        )
    return np.array(rows, dtype=float)


def _file_order(ranked: list[tuple[_Candidate, Hit]], value: Any) -> list[tuple[str, str]]:
    best: dict[tuple[str, str], float] = {}
    for cand, hit in ranked:
        key = (hit.source, hit.path)
        best[key] = max(best.get(key, -math.inf), value(cand, hit))
    return sorted(best, key=lambda f: -best[f])


def is_primary(hit: Hit) -> bool:
    """Code or documentation, not a test or a changelog: by its path, or in Rust by the
    module it is in (`#[cfg(test)] mod tests` inside the code it tests)."""
    if _secondary_path(hit.path):
        return False
    return not (hit.language == "rust" and RUST_TEST_MODULE.match(hit.symbol or ""))


@lru_cache(maxsize=1 << 14)
def _secondary_path(path: str) -> bool:
    return SECONDARY_PATH.search(path) is not None


def _orphan_test(app: App, ranked: list[tuple[_Candidate, Hit]]) -> bool:
    """A top result is a test of a module (test_X, X_test) that the index does not have."""
    for _, hit in ranked[:ANSWER_K]:
        m = TEST_SUBJECT.search(hit.path)
        if m and not app.catalog.has_module(hit.source, m.group(1) or m.group(2)):
            return True
    return False


def _query_features(
    app: App,
    query: str,
    ranked: list[tuple[_Candidate, Hit]],
    weights: dict,
    hit: np.ndarray | None,
) -> np.ndarray:
    dense_files = _file_order(ranked, lambda c, h: h.dense)
    lexical_files = _file_order([(c, h) for c, h in ranked if c.lexical_side], lambda c, h: c.bm25)
    file_dense: dict[tuple[str, str], float] = {}
    for _, h in ranked:
        key = (h.source, h.path)
        file_dense[key] = max(file_dense.get(key, -1.0), h.dense)
    top_dense = sorted(file_dense.values(), reverse=True)
    second = top_dense[1] if len(top_dense) > 1 else 0.0
    scores = [h.score for _, h in ranked]
    total_w = sum(w for w, *_ in weights.values()) or 1.0
    top_held = _held(weights, *(f"{h.path} {h.symbol} {h.text}" for _, h in ranked[:ANSWER_K]))
    d5, l5 = set(dense_files[:ANSWER_K]), set(lexical_files[:ANSWER_K])
    identifiers = [w for w in dict.fromkeys(WORD.findall(query)) if looks_like_identifier(w)][:4]

    def defined(name: str) -> bool:
        last = name.lower().replace("::", ".").rsplit(".", 1)[-1]
        return any(app.catalog.name_frequency(t) > 0 for t in {name.lower(), last} if t)

    return np.array(
        [
            logit(float(hit.max())) if hit is not None else 0.0,
            top_dense[0],
            top_dense[0] - second,
            top_dense[0] - float(np.mean(top_dense[:10])),
            max((math.log1p(c.bm25) for c, _ in ranked), default=0.0),
            scores[0] - scores[min(len(scores), ANSWER_K) - 1],
            len(d5 & l5) / ANSWER_K,
            float(bool(lexical_files) and dense_files[0] == lexical_files[0]),
            sum(w for w, df, _ in weights.values() if df > 0) / total_w,
            _coverage(weights, top_held),
            math.log1p(len(weights)),
            float(is_primary(ranked[0][1])),
            min(
                (scores[0] - h.score for _, h in ranked if is_primary(h)),
                default=SECONDARY_PENALTY * 3,
            ),
            float(_orphan_test(app, ranked)),
            sum(w for w, _, names in weights.values() if names > 0) / total_w,
            max(_coverage(weights, _held(weights, h.path, h.symbol)) for _, h in ranked[:ANSWER_K]),
            float(bool(identifiers)),
            sum(map(defined, identifiers)) / len(identifiers) if identifiers else 0.0,
            sum(not is_primary(h) for _, h in ranked[:ANSWER_K]) / ANSWER_K,
        ],
        dtype=float,
    )


def dealt(conf: np.ndarray, files: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """Results (each of `files[i]`, in fused order) ordered by confidence, with each file's
    results kept in fused order on the places that file holds; and the confidence shown
    at each place. A result is relevant when its file is (so confidence was fitted and is
    measured), so a file's confidences are dealt to its results in that order: results
    read in the order of their confidence, and no file's figures change."""
    surest = np.argsort(-conf, kind="stable")
    return within_files(surest, files), conf[surest]


def within_files(order: Iterable[int], files: Sequence[object]) -> np.ndarray:
    """`order` (of results in fused order, each of `files[i]`), with each file's results
    put back in fused order on the places that file holds: [2, 1, 0] of files
    [a, b, a] becomes [0, 1, 2] (a, b, a)."""
    queues: dict[object, list[int]] = {}
    for i, f in enumerate(files):
        queues.setdefault(f, []).append(i)
    return np.array([queues[files[i]].pop(0) for i in order], dtype=int)


def _merge_overlaps(hits: list[Hit]) -> list[Hit]:
    """Results whose lines overlap or touch in one file become one, at the best one's
    rank. A merged result can reach others kept before: it takes them in too."""
    out: dict[int, Hit] = {}  # by rank; a result merged into a better one leaves
    files: dict[tuple[str, str], list[int]] = {}  # each file's places in `out`
    for rank, hit in enumerate(hits):
        places = files.setdefault((hit.source, hit.path), [])
        group: list[int] = []
        merged = hit
        while True:  # the places are this file's: lines that overlap or are next touch
            start, end = merged.start_line - 1, merged.end_line + 1
            touching = [
                i
                for i in places
                if out[i].start_line <= end and start <= out[i].end_line and i not in group
            ]
            if not touching:
                break
            group += touching
            merged = hit
            for i in sorted(group, reverse=True):  # the better's lines win: join best last
                merged = _join(out[i], merged)
        if not group:
            places.append(rank)
            out[rank] = hit
            continue
        first = min(group)
        out[first] = merged
        for i in group:
            if i != first:
                del out[i]
                places.remove(i)
    return [out[i] for i in sorted(out)]


SYMBOL_SEP = " | "  # between the symbols of merged results (a heading may hold ", ")


def _join(a: Hit, b: Hit) -> Hit:
    lines: dict[int, str] = {}
    for h in (b, a):  # a's lines win where both have one
        for n, line in enumerate(h.text.split("\n"), h.start_line):
            lines[n] = line
    start, end = min(a.start_line, b.start_line), max(a.end_line, b.end_line)
    names = a.symbol.split(SYMBOL_SEP) + b.symbol.split(SYMBOL_SEP)
    symbols = [s for s in dict.fromkeys(names) if s]
    return replace(
        a,
        start_line=start,
        end_line=end,
        symbol=SYMBOL_SEP.join(symbols),
        match=MATCHES[min(MATCHES.index(a.match), MATCHES.index(b.match))],
        text="\n".join(lines.get(n, "") for n in range(start, end + 1)),
    )


def _by_file(hits: list[Hit], k: int) -> list[Hit]:
    """One result per file, at the rank of its best evidence (its first result)."""
    files: dict[tuple[str, str], Hit] = {}
    for hit in hits:
        files.setdefault((hit.source, hit.path), hit)
    return list(files.values())[:k]
