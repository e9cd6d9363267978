"""Markdown: one section per heading, its symbol the heading path ("Install > From PyPI")."""

from __future__ import annotations

import re

from contextd.indexers.segments import Lines, Segment, to_chunks
from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


class MarkdownChunker:
    language = "markdown"

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    def chunk(self, path: str, text: str) -> list[Chunk]:
        lines = Lines(text, self.counter)
        segs: list[Segment] = []
        trail: list[tuple[int, str]] = []  # (level, title) of the open headings
        start, symbol, fence = 0, "", None
        for i, line in enumerate(lines.lines):
            if m := FENCE.match(line):
                fence = None if fence == m.group(1) else (fence or m.group(1))
                continue
            m = HEADING.match(line)
            if fence or not m:
                continue
            if i > start:
                segs.append(Segment(start, i, symbol, is_def=bool(symbol)))
            level = len(m.group(1))
            trail = [(lv, t) for lv, t in trail if lv < level] + [(level, m.group(2))]
            symbol = " > ".join(t for _, t in trail)
            start = i
        if start < len(lines):
            segs.append(Segment(start, len(lines), symbol, is_def=bool(symbol)))
        return to_chunks(segs, lines, path, self.language, self.counter)
