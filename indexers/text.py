"""Plain text: overlapping windows of whole lines, sized in model tokens."""

from __future__ import annotations

from contextd.indexers.segments import Lines, Segment, to_chunks
from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk


def window_chunks(
    path: str, text: str, language: str, counter: TokenCounter, lines: Lines | None = None
) -> list[Chunk]:
    lines = lines or Lines(text, counter)
    return to_chunks([Segment(0, len(lines))], lines, path, language, counter)


class WindowChunker:
    def __init__(self, language: str, counter: TokenCounter) -> None:
        self.language = language
        self.counter = counter

    def chunk(self, path: str, text: str) -> list[Chunk]:
        return window_chunks(path, text, self.language, self.counter)
