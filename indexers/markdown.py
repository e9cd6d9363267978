"""Markdown: one section per heading, its symbol the heading path ("Install > From PyPI").

Headings are read as CommonMark reads them: ATX (`## Title`, up to three spaces in, a
closing `#` run only after a space: `# Using C#`) and setext (a line underlined with
`===` or `---`); never inside a code fence (closed only by a fence of its own kind, at
least as long: a ```` fence holds ``` lines) or the front matter (`---` or `+++` on the
first line, to its closing line) or an HTML block (`<pre>` to `</pre>`; another tag that
opens a line, to the next blank line).
"""

from __future__ import annotations

import html
import re

from contextd.indexers.segments import Lines, Segment, to_chunks
from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk

HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
MAX_TITLE_CHARS = 120  # a setext title is its paragraph, which can be long
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FRONT_MATTER = {"---": "---", "+++": "+++"}  # opening line -> closing line
# A line that cannot be a setext heading's text: a list item, quote, table row, HTML...
NOT_TITLE = re.compile(r"^ {0,3}(?:[-*+>|<]|\d+[.)]\s|#)|^\s*$|^ {4}")
RAW_HTML = re.compile(r"^ {0,3}<(pre|script|style|textarea)(?:[\s>]|$)", re.IGNORECASE)
# CommonMark's HTML blocks that end at a blank line: a block-level tag opening the line,
# or a line that is one whole tag and nothing else.
BLOCK_TAGS = (
    "address|article|aside|blockquote|body|caption|center|col|colgroup|dd|details|dialog|"
    "dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h[1-6]|head|"
    "header|hr|html|iframe|legend|li|link|main|menu|nav|noframes|ol|optgroup|option|p|"
    "param|search|section|summary|table|tbody|td|tfoot|th|thead|title|tr|track|ul"
)
HTML_TAG = re.compile(
    rf"^ {{0,3}}</?(?:{BLOCK_TAGS})(?:[\s/>]|$)|^ {{0,3}}</?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>\s*$",
    re.IGNORECASE,
)

# A heading's inline markup, dropped from its title: badges (`[![CI](svg)](url)`) and other
# images, links (their text stays), HTML tags, entities (`&emsp;`) and emphasis; code spans
# keep their text as it is (`**kwargs`, `a[0]`).
CODE_SPAN = re.compile(r"(`+)([^`]{1,300}?)\1")
IMAGE = re.compile(
    r"\[?!\[[^\[\]]{0,200}\](?:\([^()\s]{0,500}\)|\[[^\[\]]{0,100}\])?"
    r"(?:\]\([^()\s]{0,500}\)|\]\[[^\[\]]{0,100}\])?"
)
LINK = re.compile(r"\[([^\[\]]{0,200})\]\([^()\s]{0,500}\)")  # `[i][j]` is code, not a link
INLINE_TAG = re.compile(r"</?[A-Za-z][\w-]{0,50}(?:\s[^<>]{0,300})?/?>")
EMPHASIS = re.compile(r"(?<![\w*])(\*{1,3})(?=[^\s*])([^*]{1,200}?)(?<=[^\s*])\1(?![\w*])")
MAX_MARKUP_CHARS = 1000  # a title is read this far: a paragraph can be a megabyte


def plain(title: str) -> str:
    """A heading's text as a reader sees it: `Serde JSON &emsp; [![CI](…)](…)` is `Serde JSON`."""
    title = title[:MAX_MARKUP_CHARS]
    if not any(c in title for c in "[]<>&*`"):
        return title
    parts = []
    for i, part in enumerate(CODE_SPAN.split(title)):
        if i % 3 == 1:
            continue  # the backticks of a code span
        if i % 3 == 0:
            part = LINK.sub(r"\1", IMAGE.sub(" ", part))
            part = html.unescape(EMPHASIS.sub(r"\2", INLINE_TAG.sub(" ", part)))
        parts.append(part)
    return " ".join("".join(parts).split())


class MarkdownChunker:
    language = "markdown"

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    def chunk(self, path: str, text: str) -> list[Chunk]:
        lines = Lines(text, self.counter)
        segs: list[Segment] = []
        trail: list[tuple[int, str]] = []  # (level, title) of the open headings
        start, symbol = 0, ""
        for i, level, title in headings(lines.lines):
            if i > start:
                segs.append(Segment(start, i, symbol, is_def=bool(symbol)))
            trail, symbol = opened(trail, level, title)
            start = i
        if start < len(lines):
            segs.append(Segment(start, len(lines), symbol, is_def=bool(symbol)))
        return to_chunks(segs, lines, path, self.language, self.counter)


def opened(
    trail: list[tuple[int, str]], level: int, title: str
) -> tuple[list[tuple[int, str]], str]:
    """The open headings once `title` opens at `level`, and their path ("A > B")."""
    trail = [(lv, t) for lv, t in trail if lv < level] + [(level, title)]
    return trail, " > ".join(t for _, t in trail if t)


def headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of each heading, in order."""
    out: list[tuple[int, int, str]] = []
    i = 0
    if lines and (close := FRONT_MATTER.get(lines[0].rstrip())):
        end = next((j for j in range(1, len(lines)) if lines[j].rstrip() == close), None)
        if end is not None:
            i = end + 1
    fence: tuple[str, int] | None = None  # the open fence's character and length
    para: int | None = None  # the first line of the paragraph read so far
    while i < len(lines):
        line = lines[i]
        if fence is not None or not line.strip() or HEADING.match(line) or FENCE.match(line):
            para = None
        if fence is None and (raw := RAW_HTML.match(line)):  # to its closing tag
            closing, para = f"</{raw.group(1).lower()}>", None
            while i < len(lines) and closing not in lines[i].lower():
                i += 1
            i += 1
            continue
        if fence is None and HTML_TAG.match(line):  # to the next blank line
            para = None
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
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
                out.append((i, len(m.group(1)), plain((m.group(2) or "").strip())))
            elif NOT_TITLE.match(line):
                para = None
            else:
                para = i if para is None else para
                if i + 1 < len(lines) and (under := SETEXT.match(lines[i + 1])):
                    # The title is the whole paragraph the underline closes.
                    title = plain(" ".join(t.strip() for t in lines[para : i + 1]))
                    if len(title) > MAX_TITLE_CHARS:  # a long paragraph: its opening words
                        title = title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0] + " …"
                    out.append((para, 1 if under.group(1)[0] == "=" else 2, title))
                    i, para = i + 2, None
                    continue
        i += 1
    return out
