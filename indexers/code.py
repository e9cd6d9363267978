"""Syntax-aware chunks: functions, classes and methods found by tree-sitter queries.

The queries are data (`queries/<language>.scm`): each captures `@definition.<kind>`
nodes with a `@name` (and, for Go methods, a `@receiver`). Definitions nest into a
symbol path (`Session.resolve_redirects`). A definition that fits the budget is one
chunk; a bigger one is split into its own definitions, its remaining lines kept under
its name. A parse that fails or takes too long falls back to line windows.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from tree_sitter import Language, Node, Parser, Query

from contextd.indexers.segments import Lines, Segment, to_chunks
from contextd.indexers.text import window_chunks
from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk

log = logging.getLogger(__name__)

# language -> (grammar module, function returning the language pointer, query file)
GRAMMARS: dict[str, tuple[str, str, str]] = {
    "python": ("tree_sitter_python", "language", "python"),
    "javascript": ("tree_sitter_javascript", "language", "javascript"),
    "typescript": ("tree_sitter_typescript", "language_typescript", "typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx", "typescript"),
    "go": ("tree_sitter_go", "language", "go"),
    "rust": ("tree_sitter_rust", "language", "rust"),
    "java": ("tree_sitter_java", "language", "java"),
    "c": ("tree_sitter_c", "language", "c"),
    "cpp": ("tree_sitter_cpp", "language", "cpp"),
    "ruby": ("tree_sitter_ruby", "language", "ruby"),
}

# Lines directly above a definition that belong to it: comments, decorators, attributes.
LEADING_MARKERS = ("#", "//", "/*", "*", "@", "///", "--")
# Nodes that hold a definition with what belongs to it: Python's decorators, C++'s
# `template <typename T>`, TypeScript decorators written before `export`.
RUST_TYPE_DECOR = re.compile(r"^&\s*(?:'\w+\s+)?(?:mut\s+)?|^(?:dyn|impl)\s+")
WRAPPERS = frozenset({"decorated_definition", "template_declaration", "export_statement"})
MAX_NESTING = 48
# Definitions are looked for this many syntax levels deep at most. Real code nests a few
# dozen levels; a query over a file nested 50,000 deep took minutes without this limit
# (and tree-sitter 0.26 crashes on a progress callback for queries, so none is used).
MAX_START_DEPTH = 200
# A licence header is not indexed: the same 15 lines atop every file of a project took a
# chunk's worth of tokens beside each file's first definition, and came up for nothing.
LICENCE = re.compile(
    r"(?i)copyright\s*(?:\(c\)|©|\d{4})|spdx-license-identifier|licensed under|"
    r"licensed to the apache|general public license|all rights reserved|"
    r"permission is hereby granted|\b(?:mit|bsd|apache|isc|mozilla|gnu)\b.{0,40}\blicen[cs]e\b"
)
LINE_COMMENTS = (b"//", b"#", b"--")
NOT_WORDS = re.compile(r"^#!|coding[:=]|-\*-")  # a shebang, an encoding line
COMMENT_MARK = re.compile(r"^\s*(?:/\*+!?|\*+/?|//[/!]?|#!?|--)?\s*")


@dataclass
class Definition:
    start: int  # 0-based line, inclusive
    end: int  # 0-based line, exclusive
    name: str
    start_byte: int
    end_byte: int
    children: list[Definition] = field(default_factory=list)


@cache
def _language(language: str) -> tuple[Language, Query]:
    module_name, func, query_name = GRAMMARS[language]
    lang = Language(getattr(importlib.import_module(module_name), func)())
    source = resources.files("contextd.indexers.queries").joinpath(f"{query_name}.scm")
    return lang, Query(lang, source.read_text(encoding="utf-8"))


def _matches(query: Query, node: Node) -> list[tuple[int, dict[str, list[Node]]]]:
    """Query matches across py-tree-sitter versions (the one version shim)."""
    try:
        from tree_sitter import QueryCursor
    except ImportError:  # py-tree-sitter < 0.25
        result: Any = query.matches(node)  # type: ignore[attr-defined]
        return list(result)
    cursor = QueryCursor(query)
    cursor.set_max_start_depth(MAX_START_DEPTH)
    return list(cursor.matches(node))


def qualified(parent: str, name: str) -> str:
    """A definition's name within its parent's: `Parser.parse`; a suite's `.cookie(...)`
    block within `res` is `res.cookie(...)`."""
    if not parent:
        return name
    return f"{parent}{name}" if name.startswith(".") else f"{parent}.{name}"


def _text(node: Node, data: bytes) -> str:
    """A node's text, cut from the parsed bytes: `node.text` of a tree parsed through a
    read callback calls it again (64 KiB copied for each name: 4x the time of a walk)."""
    return data[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _definitions(root: Node, query: Query, data: bytes) -> list[Definition]:
    found: dict[tuple[int, int], Definition] = {}
    for _, captures in _matches(query, root):
        defs = [
            n for key, nodes in captures.items() if key.startswith("definition.") for n in nodes
        ]
        names = captures.get("name")
        if not defs or not names:
            continue
        node = defs[0]
        name = _text(names[0], data).strip().split("\n")[0][:120]
        if names[0].type in ("string", "template_string"):  # a test's title: its words
            name = name[1:-1] if len(name) > 1 and name[0] == name[-1] else name.strip("'\"`")
            name = name.replace("\\'", "'").replace('\\"', '"')
        if node.type == "impl_item":  # `&'a mut Map<K, V>` is an impl of Map
            name = RUST_TYPE_DECOR.sub("", name.split("<", 1)[0]).strip() or name
        if trait := captures.get("trait"):  # `From<bool> for Value`, as the source says
            name = f"{_text(trait[0], data).strip()} for {name}"
        if receiver := captures.get("receiver"):
            name = f"{_text(receiver[0], data)}.{name}"
        key = (node.start_byte, node.end_byte)
        if key in found:
            continue
        outer = node  # its decorators (over several lines) and `template <...>` come along
        while outer.parent is not None and outer.parent.type in WRAPPERS:
            outer = outer.parent
        end = node.end_point.row + (1 if node.end_point.column > 0 else 0)
        found[key] = Definition(
            outer.start_point.row,
            max(end, outer.start_point.row + 1),
            name,
            outer.start_byte,
            node.end_byte,
        )
    roots: list[Definition] = []
    stack: list[Definition] = []
    for d in sorted(found.values(), key=lambda d: (d.start_byte, -d.end_byte)):
        while stack and d.start_byte >= stack[-1].end_byte:
            stack.pop()
        (stack[-1].children if stack else roots).append(d)
        stack.append(d)
    return roots


def _licence_end(root: Node, data: bytes) -> int:
    """The line after the licence header that opens the file, or 0.

    The header is the comments before any code, taken a unit at a time while each opens
    with a copyright or licence: a block comment (`/* … */`) is a unit of its own, a run
    of line comments on adjacent lines (`//`, `#`) is one. The first unit that is not a
    licence stays, with all after it (Go's `// Package x …`, a Javadoc, a `//!` crate
    doc), and so does a line the header shares with code (`/*! … */ !function(){…}`)."""
    nodes = root.children
    units: list[list[Node]] = []
    last_was_line = False  # the unit so far is a run of line comments
    for node in nodes:
        if "comment" not in node.type:
            break
        line = data[node.start_byte : node.end_byte].lstrip().startswith(LINE_COMMENTS)
        if line and last_was_line and node.start_point.row == units[-1][-1].end_point.row + 1:
            units[-1].append(node)
        else:
            units.append([node])
        last_was_line = line
    end = 0
    for unit in units:
        text = data[unit[0].start_byte : unit[-1].end_byte].decode("utf-8", "replace")
        lines = (
            COMMENT_MARK.sub("", line, count=1)
            for line in text.splitlines()
            if not NOT_WORDS.search(line)
        )
        first = next((line for line in lines if any(c.isalnum() for c in line)), "")
        if not LICENCE.search(first):  # its first words: one that cites a licence stays
            break
        end = unit[-1].end_point.row + 1
    following = next((n for n in nodes if "comment" not in n.type), None)
    if end and following is not None and following.start_point.row < end:
        end = following.start_point.row  # code on the header's last line keeps that line
    return end


class TreeSitterChunker:
    def __init__(self, language: str, counter: TokenCounter, timeout_s: float = 5.0) -> None:
        self.language = language
        self.counter = counter
        self.timeout_s = timeout_s

    def chunk(self, path: str, text: str) -> list[Chunk]:
        lines = Lines(text, self.counter)
        try:
            parsed = self._parse_with_header(text)
        except Exception as exc:  # a grammar failure must never stop the run
            log.warning("parse of %s failed (%s); falling back to line windows", path, exc)
            parsed = None
        if parsed is None:
            return window_chunks(path, text, self.language, self.counter, lines)
        defs, header = parsed
        segs = self._plan(defs, header, len(lines), "", lines, 0)
        return to_chunks(segs, lines, path, self.language, self.counter)

    def symbols(self, text: str) -> list[str]:
        """Every definition's symbol path, in source order (empty if the parse fails)."""
        out: list[str] = []

        def walk(defs: list[Definition], parent: str) -> None:
            for d in defs:
                path = qualified(parent, d.name)
                out.append(path)
                walk(d.children, path)

        walk(self._parse(text) or [], "")
        return out

    def _parse(self, text: str) -> list[Definition] | None:
        parsed = self._parse_with_header(text)
        return parsed[0] if parsed else None

    def _parse_with_header(self, text: str) -> tuple[list[Definition], int] | None:
        """The file's definitions, and the line its licence header ends on (0: none)."""
        lang, query = _language(self.language)
        parser = Parser(lang)
        deadline = time.monotonic() + self.timeout_s
        data = text.encode("utf-8", "surrogatepass")
        # A read callback, not bytes: tree-sitter only honours progress_callback then.
        tree = parser.parse(
            lambda offset, _point: data[offset : offset + 65536],
            progress_callback=lambda *_: time.monotonic() > deadline,
        )
        if tree is None:
            log.warning("parse timed out after %.1fs; falling back to line windows", self.timeout_s)
            return None
        return _definitions(tree.root_node, query, data), _licence_end(tree.root_node, data)

    def _plan(
        self, defs: list[Definition], lo: int, hi: int, parent: str, lines: Lines, depth: int
    ) -> list[Segment]:
        out: list[Segment] = []
        cursor = lo
        for d in defs:
            start, end = max(d.start, cursor), min(d.end, hi)
            if end <= start:
                continue
            # A comment right above a definition is its own. One a blank line away stays
            # apart: joining JSDoc blocks to their functions cost express's eval 2 points
            # of Recall@5 (0.808 -> 0.788), the definitions cut into more windows.
            while start > cursor and lines.lines[start - 1].lstrip().startswith(LEADING_MARKERS):
                start -= 1
            if start > cursor:
                out.append(Segment(cursor, start, parent))
            symbol = qualified(parent, d.name)
            fits = lines.tokens(start, end) <= self.counter.body_budget
            if fits or not d.children or depth >= MAX_NESTING:
                out.append(Segment(start, end, symbol, is_def=True))
            else:
                out += self._plan(d.children, start, end, symbol, lines, depth + 1)
            cursor = end
        if cursor < hi:
            out.append(Segment(cursor, hi, parent))
        return out
