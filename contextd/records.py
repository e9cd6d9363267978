"""Internal values passed between layers. Frozen; pydantic stays at the edges."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class ChangeKind(str, Enum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True)
class Change:
    """One file of a source that differs from the catalog."""

    source: str
    path: str
    kind: ChangeKind
    hash: str = ""
    size: int = 0
    mtime_ns: int = 0
    text: str = field(default="", repr=False)


@dataclass(frozen=True)
class Skip:
    """A file that was left out, and why."""

    source: str
    path: str
    reason: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class Chunk:
    """A piece of one file, sized to fit the embedding model."""

    path: str
    language: str
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    text: str
    symbol: str = ""

    @property
    def embed_text(self) -> str:
        """What the model reads: the symbol path as a header, then the text.

        The header is left out when the text opens with it already (a top-level
        `def name(`): said twice, the name crowds out the meaning (-1 point of MRR on
        CoSQA); a method's class or a later window's definition is context it lacks.
        """
        if not self.symbol or self.symbol in "\n".join(self.text.split("\n", 3)[:3]):
            return self.text
        return f"{self.symbol}\n{self.text}"

    @cached_property
    def hash(self) -> str:  # asked for several times in a pass: hashed once
        return content_hash(self.embed_text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class Hit:
    """One search result."""

    source: str
    path: str
    start_line: int
    end_line: int
    symbol: str
    language: str
    score: float  # fused: dense cosine + LEX_WEIGHT x lexical (BM25 relative to the best)
    text: str
    dense: float = 0.0  # cosine similarity of query and chunk
    lexical: float = 0.0  # BM25 relative to the best lexical match of this query (0..1)
    confidence: float | None = None  # calibrated P(relevant); None without a calibration
    match: str | None = None  # in a lookup: "definition" or "mention" of the word, as fact


@dataclass(frozen=True)
class Touch:
    """A file whose stat changed but whose content did not."""

    source: str
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FileState:
    """What the catalog knows of one file."""

    size: int
    mtime_ns: int
    hash: str
    status: str  # "indexed" or "skipped"
