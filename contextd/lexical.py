"""Code-aware tokens for the lexical (FTS5) index.

Identifiers are split at `snake_case`, `camelCase` and dots, and also kept whole, so
`resolve_redirects` matches "redirects", "resolve_redirects" and "resolve redirects".
The FTS5 table applies the Porter stemmer on top ("redirects" ~ "redirect").
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache
from itertools import chain

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[0-9]+")
SEPARATORS = re.compile(r"[._]+")
CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
MAX_TOKEN = 64

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "did",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "may",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "use",
        "used",
        "using",
        "get",
        "gets",
    ]
)


@lru_cache(maxsize=1 << 16)
def _word_tokens(word: str) -> tuple[str, ...]:
    """A word's tokens as `code_tokens` emits them; words repeat, so they are remembered."""
    parts: list[str] = []
    for piece in SEPARATORS.split(word):
        parts += CAMEL.findall(piece)
    lowered = [p.lower() for p in parts if p]
    # Each name in a dotted one is a token whole too: `exports.compileETag` holds the
    # name `compileetag`, and `self.max_retry_delay` the name `max_retry_delay`.
    names = [n.lower() for n in word.split(".") if n] if "." in word else []
    named = [n for n in names if n not in lowered]
    if len(lowered) > 1 or word.lower() not in lowered:
        return (word.lower(), *named, *lowered)
    return tuple(lowered)


def identifier_parts(word: str) -> list[str]:
    """The pieces the index splits a name into: `max_retry_delay` -> max, retry, delay."""
    tokens = _word_tokens(word)
    return list(tokens[1:]) if len(tokens) > 1 and tokens[0] == word.lower() else []


def _words(text: str) -> list[str]:
    """The words of `text` that are tokenized (those up to MAX_TOKEN characters)."""
    words = WORD.findall(text)
    if max(map(len, words), default=0) > MAX_TOKEN:
        words = [w for w in words if len(w) <= MAX_TOKEN]
    return words


def code_tokens(text: str) -> list[str]:
    return list(chain.from_iterable(map(_word_tokens, _words(text))))


def token_set(text: str, within: Collection[str] = ()) -> set[str]:
    """The distinct tokens of `code_tokens(text)`, each distinct word split once; with
    `within`, only those of the words holding one of its (lowercase) strings."""
    words = set(_words(text))
    if within:
        words = {w for w in words if any(s in w.lower() for s in within)}
    return {t for w in words for t in _word_tokens(w)}


def query_terms(query: str) -> list[str]:
    """Distinct tokens of a query worth matching (stopwords dropped)."""
    seen: dict[str, None] = {}
    for token in code_tokens(query):
        if token not in STOPWORDS and len(token) > 1:
            seen.setdefault(token, None)
    return list(seen)


def fts_query(terms: list[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.:]+[A-Za-z_][A-Za-z0-9_]*)*")


def looks_like_identifier(query: str) -> bool:
    """One token shaped like code (`resolve_redirects`, `HTTPAdapter.send`, `err42`)."""
    q = query.strip().strip("`'\"()")
    if not q or any(c.isspace() for c in q) or not IDENTIFIER.fullmatch(q):
        return False
    return (
        any(c in q for c in "_.:")
        or any(c.isdigit() for c in q)
        or (any(c.isupper() for c in q[1:]) and any(c.islower() for c in q))
    )
