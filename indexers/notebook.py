"""Jupyter notebooks: cut by cells, read as their source, never as the JSON around it.

A chunk holds a cell's source as the author wrote it (not `"    x = 1\\n",` strings),
under the heading path of the Markdown cells above it; outputs and metadata are left
out. Line numbers stay those of the `.ipynb` file: Jupyter writes each source line as one
JSON string on a line of its own, so a cell's lines are consecutive lines of the file.
A notebook written otherwise (on one line, or not valid JSON) is cut into windows of its
text, as any other file.
"""

from __future__ import annotations

import json
import re

from contextd.indexers.markdown import headings, opened
from contextd.indexers.segments import Lines, Segment, to_chunks
from contextd.indexers.text import window_chunks
from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk
from contextd.redaction import redact

SOURCE_OPEN = re.compile(r'^\s*"source":\s*\[\s*$')
SOURCE_ONE = re.compile(r'^\s*"source":\s*(".*")\s*,?\s*$')  # one string, or `[]`
SOURCE_EMPTY = re.compile(r'^\s*"source":\s*\[\s*\]\s*,?\s*$')
LIST_CLOSE = re.compile(r"^\s*\]\s*,?\s*$")
CELL_TYPE = re.compile(r'^(\s*)"cell_type":')
MERGE_GAP_LINES = 24  # a cell and the next are one chunk only this close in the file


class NotebookChunker:
    language = "ipynb"

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    def chunk(self, path: str, text: str) -> list[Chunk]:
        read = cells(text)
        if read is None:
            return window_chunks(path, text, self.language, self.counter)
        lines, found = read
        # Secrets were redacted in the file's JSON; its escapes (`\"`) can hide a form
        # that only the cells' own text shows.
        lines = redact("\n".join(lines)).text.split("\n")
        virtual = Lines("\n".join(lines) + "\n", self.counter)
        segs: list[Segment] = []
        trail: list[tuple[int, str]] = []  # (level, title) of the open headings
        symbol = ""
        for n, (start, end, kind) in enumerate(found):
            if kind == "markdown":  # read as any Markdown is: fences, setext, HTML blocks
                for _, level, title in headings(lines[start:end]):
                    trail, symbol = opened(trail, level, title)
            # Small cells are merged with their neighbours when few lines (outputs,
            # metadata) lie between: those are blank here, never part of a chunk's text.
            upto = found[n + 1][0] if n + 1 < len(found) else end
            if upto - end > MERGE_GAP_LINES:
                upto = end
            segs.append(Segment(start, max(end, upto), symbol, is_def=bool(symbol)))
        return to_chunks(segs, virtual, path, self.language, self.counter)


def cells(text: str) -> tuple[list[str], list[tuple[int, int, str]]] | None:
    """The file's lines with each cell's source lines as written and every other line
    blank, and each cell's (first line, end line, cell type), 0-based; None when the
    notebook is not laid out one source line to a line of the file."""
    try:
        notebook = json.loads(text)
    except ValueError:
        return None
    wanted = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(wanted, list):
        return None
    file_lines = text.split("\n")
    if file_lines and file_lines[-1] == "":
        file_lines.pop()
    # A cell's own keys are indented alike; a "source" key deeper down (an output's JSON,
    # a plot's spec, metadata) is not a cell's source.
    depth = next((m[1] for line in file_lines if (m := CELL_TYPE.match(line))), None)
    if depth is None:
        return None
    out = [""] * len(file_lines)
    found: list[tuple[int, int, str]] = []
    expected = iter(wanted)
    i = 0
    while i < len(file_lines):
        line = file_lines[i]
        if not line.startswith(depth) or line[len(depth) : len(depth) + 1] != '"':
            i += 1
            continue
        if SOURCE_EMPTY.match(line):
            cell = next(expected, None)
            if not isinstance(cell, dict) or _source(cell) != "":
                return None
        elif m := SOURCE_ONE.match(line):
            cell = next(expected, None)
            part = _string(m[1])
            if not isinstance(cell, dict) or part is None or _source(cell) != part:
                return None
            if "\n" in part.rstrip("\n"):
                return None  # a multi-line cell on one line of the file
            out[i] = part.rstrip("\r\n")
            found.append((i, i + 1, str(cell.get("cell_type", ""))))
        elif SOURCE_OPEN.match(line):
            cell = next(expected, None)
            start, parts = i + 1, []
            i += 1
            while i < len(file_lines) and not LIST_CLOSE.match(file_lines[i]):
                part = _string(file_lines[i].strip().removesuffix(","))
                if part is None or "\n" in part.rstrip("\n"):
                    return None
                out[i] = part.rstrip("\r\n")
                parts.append(part)
                i += 1
            if not isinstance(cell, dict) or _source(cell) != "".join(parts):
                return None
            found.append((start, i, str(cell.get("cell_type", ""))))
        i += 1
    if next(expected, None) is not None:
        return None  # a cell whose source was not found where Jupyter writes it
    return out, found


def _source(cell: dict) -> str | None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return source if isinstance(source, str) else None


def _string(literal: str) -> str | None:
    try:
        value = json.loads(literal)
    except ValueError:
        return None
    return value if isinstance(value, str) else None
