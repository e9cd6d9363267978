"""Markdown: one section per heading, its symbol the heading path ("Install > From PyPI").

Headings are read as CommonMark reads them: ATX (`## Title`, up to three spaces in, a
closing `#` run only after a space: `# Using C#`) and setext (a line underlined with
`===` or `---`); never inside a code fence (closed only by a fence of its own kind, at
least as long: a ```` fence holds ``` lines) or the front matter (`---` or `+++` on the
first line, to its closing line).
"""

from __future__ import annotations

import re

from contextd.indexers.segments import Lines, Segment, to_chunks
from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk

HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FRONT_MATTER = {"---": "---", "+++": "+++"}  # opening line -> closing line
# A line that cannot be a setext heading's text: a list item, quote, table row, HTML...
NOT_TITLE = re.compile(r"^ {0,3}(?:[-*+>|<]|\d+[.)]\s|#)|^\s*$|^ {4}")


class MarkdownChunker:
    language = "markdown"

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    def chunk(self, path: str, text: str) -> list[Chunk]:
        lines = Lines(text, self.counter)
        segs: list[Segment] = []
        trail: list[tuple[int, str]] = []  # (level, title) of the open headings
        start, symbol = 0, ""
        for i, level, title in _headings(lines.lines):
            if i > start:
                segs.append(Segment(start, i, symbol, is_def=bool(symbol)))
            trail = [(lv, t) for lv, t in trail if lv < level] + [(level, title)]
            symbol = " > ".join(t for _, t in trail if t)
            start = i
        if start < len(lines):
            segs.append(Segment(start, len(lines), symbol, is_def=bool(symbol)))
        return to_chunks(segs, lines, path, self.language, self.counter)


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of each heading, in order."""
    out: list[tuple[int, int, str]] = []
    i = 0
    if lines and (close := FRONT_MATTER.get(lines[0].rstrip())):
        end = next((j for j in range(1, len(lines)) if lines[j].rstrip() == close), None)
        if end is not None:
            i = end + 1
    fence: tuple[str, int] | None = None  # the open fence's character and length
    while i < len(lines):
        line = lines[i]
        if m := FENCE.match(line):
            mark = m.group(1)
            if fence is None:
                if not (mark[0] == "`" and "`" in m.group(2)):  # else inline code
                    fence = (mark[0], len(mark))
            elif mark[0] == fence[0] and len(mark) >= fence[1] and not m.group(2).strip():
                fence = None
            i += 1
            continue
        if fence is None:
            if m := HEADING.match(line):
                out.append((i, len(m.group(1)), (m.group(2) or "").strip()))
            elif (
                i + 1 < len(lines)
                and not NOT_TITLE.match(line)
                and (under := SETEXT.match(lines[i + 1]))
            ):
                out.append((i, 1 if under.group(1)[0] == "=" else 2, line.strip()))
                i += 2
                continue
        i += 1
    return out
