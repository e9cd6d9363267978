"""Line ranges to chunks: window what is too big, merge what is too small, then check.

Every chunker reduces a file to Segments (line ranges with a symbol) and hands them here.
The last step measures each chunk's embedded text exactly and splits anything over the
model's limit, so nothing the model reads is ever silently truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk

SMALL_FRACTION = 4  # a segment under budget/4 tokens is merged into a neighbour when it fits
TINY_TOKENS = 16  # a separator this small may use the header's slack; enforce_limit still checks
OVERLAP_FRACTION = 8  # windows overlap by about budget/8 tokens of lines


@dataclass
class Segment:
    start: int  # 0-based line, inclusive
    end: int  # 0-based line, exclusive
    symbol: str = ""
    is_def: bool = False


class Lines:
    """A file's lines with a prefix sum of their token counts."""

    def __init__(self, text: str, counter: TokenCounter) -> None:
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self._prefix = [0, *accumulate(counter.counts(self.lines))]

    def __len__(self) -> int:
        return len(self.lines)

    def tokens(self, start: int, end: int) -> int:
        return self._prefix[end] - self._prefix[start]


def window(seg: Segment, lines: Lines, budget: int) -> list[Segment]:
    """Split a segment into overlapping windows of at most `budget` tokens of whole lines.

    Windows are filled greedily from the top, so an edit near the end of a long segment
    leaves every earlier window (and its embedding) as it was. Only a runt at the end is
    evened out with the window before it.
    """
    if lines.tokens(seg.start, seg.end) <= budget:
        return [seg]
    overlap = budget // OVERLAP_FRACTION
    spans = _greedy(seg.start, seg.end, lines, budget, overlap)
    if len(spans) > 1 and lines.tokens(*spans[-1]) < budget // SMALL_FRACTION:
        start = spans[-2][0]
        total = lines.tokens(start, seg.end)
        half = min(budget, -(-total // 2) + overlap)
        spans = spans[:-2] + _greedy(start, seg.end, lines, half, overlap)
    return [Segment(a, b, seg.symbol, seg.is_def) for a, b in spans]


def _greedy(start: int, end: int, lines: Lines, budget: int, overlap: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    i = start
    while i < end:
        j = i + 1  # a window holds at least one line; an overlong line is split later
        while j < end and lines.tokens(i, j + 1) <= budget:
            j += 1
        if out and j <= out[-1][1]:  # the overlap alone (the next line fills a window by
            i = out[-1][1]  # itself): a copy of the last window's tail, so none
            continue
        out.append((i, j))
        if j >= end:
            break
        k = j
        while k - 1 > i + 1 and lines.tokens(k - 1, j) <= overlap:
            k -= 1
        if k == j and j - 1 > i:  # a last line over the overlap is shared all the same:
            k = j - 1  # windows of one definition overlap, distinct definitions never do
        i = k
    return out


def _merged_symbol(a: Segment, b: Segment) -> str:
    if a.is_def and b.is_def and a.symbol and b.symbol:
        if b.symbol in a.symbol.split(", "):  # a getter and its setter; cells under one heading
            return a.symbol
        return f"{a.symbol}, {b.symbol}"
    if b.is_def and not a.is_def:
        return b.symbol or a.symbol
    return a.symbol or b.symbol


def merge_small(segs: list[Segment], lines: Lines, budget: int) -> list[Segment]:
    small = budget // SMALL_FRACTION
    out: list[Segment] = []
    for seg in segs:
        if out:
            prev = out[-1]
            a, b = lines.tokens(prev.start, prev.end), lines.tokens(seg.start, seg.end)
            room = budget + (TINY_TOKENS if min(a, b) < TINY_TOKENS else 0)
            if prev.end == seg.start and a + b <= room and min(a, b) < small:
                out[-1] = Segment(
                    prev.start, seg.end, _merged_symbol(prev, seg), prev.is_def or seg.is_def
                )
                continue
        out.append(seg)
    return out


def to_chunks(
    segs: list[Segment], lines: Lines, path: str, language: str, counter: TokenCounter
) -> list[Chunk]:
    budget = counter.body_budget
    sized = [w for seg in segs for w in window(seg, lines, budget)]
    chunks: list[Chunk] = []
    for seg in merge_small(sized, lines, budget):
        start, end = seg.start, seg.end
        while start < end and not lines.lines[start].strip():
            start += 1
        while end > start and not lines.lines[end - 1].strip():
            end -= 1
        if start >= end:
            continue
        text = "\n".join(lines.lines[start:end])
        if end - start == 1 and lines.tokens(start, end) > budget:
            chunks += [
                Chunk(path, language, start + 1, start + 1, piece, seg.symbol)
                for piece in counter.split(text, budget)
            ]
        else:
            chunks.append(Chunk(path, language, start + 1, end, text, seg.symbol))
    return enforce_limit(chunks, counter)


def _header_fits(symbol: str, counter: TokenCounter) -> str:
    """Shorten a symbol header that alone would crowd out the text."""
    while symbol and counter.count(symbol) > counter.content_limit // 4:
        symbol = symbol[: len(symbol) // 2]
    return symbol


def enforce_limit(chunks: list[Chunk], counter: TokenCounter) -> list[Chunk]:
    """Measure every embedded text exactly; split whatever the model would truncate."""
    limit = counter.content_limit
    out: list[Chunk] = []
    pending = list(chunks)
    while pending:
        counts = counter.counts([c.embed_text for c in pending])
        retry: list[Chunk] = []
        for chunk, n in zip(pending, counts, strict=True):
            if n <= limit:
                out.append(chunk)
                continue
            symbol = _header_fits(chunk.symbol, counter)
            body = chunk.text.split("\n")
            if symbol != chunk.symbol:
                retry.append(
                    Chunk(
                        chunk.path,
                        chunk.language,
                        chunk.start_line,
                        chunk.end_line,
                        chunk.text,
                        symbol,
                    )
                )
            elif len(body) > 1:
                half = len(body) // 2
                mid = chunk.start_line + half
                retry.append(
                    Chunk(
                        chunk.path,
                        chunk.language,
                        chunk.start_line,
                        mid - 1,
                        "\n".join(body[:half]),
                        symbol,
                    )
                )
                retry.append(
                    Chunk(
                        chunk.path,
                        chunk.language,
                        mid,
                        chunk.end_line,
                        "\n".join(body[half:]),
                        symbol,
                    )
                )
            else:
                budget = max(8, limit - counter.count(symbol) - 2)
                retry += [
                    Chunk(
                        chunk.path, chunk.language, chunk.start_line, chunk.end_line, piece, symbol
                    )
                    for piece in counter.split(chunk.text, budget)
                ]
        pending = retry
    out.sort(key=lambda c: (c.start_line, c.end_line))
    return out
