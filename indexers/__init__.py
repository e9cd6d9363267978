"""Chunkers: one per kind of file, chosen by extension through an explicit registry."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Protocol

from contextd.indexers.code import TreeSitterChunker
from contextd.indexers.markdown import MarkdownChunker
from contextd.indexers.notebook import NotebookChunker
from contextd.indexers.text import WindowChunker
from contextd.indexers.tokens import TokenCounter
from contextd.records import Chunk

# Bump when chunk boundaries or what the model reads change: the store then asks for
# `contextd reindex`. 4: secrets in content are redacted (an older index may hold them).
# 5: generated passwords holding a sample word, and PGPASSWORD-style names, are too.
# 6: a definition's windows share a line; decorators and `template <>` go with their
# definition; Go's grouped types, older JavaScript's functions, CommonMark's headings;
# base64 blobs are a marker; more secret forms redacted. 7: secrets named in XML
# elements, flags, calls, name/value pairs and SQL are redacted; notebooks are cut by
# cells; a `.h` header in C++ is parsed as C++. 8: JavaScript and TypeScript name
# functions passed to a call, chained assignments and test suites' blocks; each name in a
# dotted one is a keyword token whole (`exports.compileETag` holds `compileetag`); a
# MySQL client's glued password (`mysql -pS3cr3t`) is redacted; Rust's constants, statics,
# type aliases and trait method signatures, trait impls as `Trait for Type`, and Java's
# enum constants and anonymous-class fields are named. 10: a generated password holding
# `&` or `=` (`Tr0ub4dor&3xyzQ`) is redacted; it had been taken for a query string.
CHUNKER_VERSION = 10

CODE_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".rb": "ruby",
}
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdx"})


class Chunker(Protocol):
    language: str

    def chunk(self, path: str, text: str) -> list[Chunk]:
        """Cut one file's text into chunks that fit the model."""
        ...


# One name for a language whatever its files' suffix: `--lang yaml` and results alike.
PLAIN_ALIASES = {"yml": "yaml", "txt": "text", "htm": "html"}
PLAIN_SUFFIX = re.compile(r"\.[a-z0-9_+#-]{1,20}")  # else it names no language ("a.<b>")


def language_of(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in CODE_EXTENSIONS:
        return CODE_EXTENSIONS[suffix]
    if suffix in MARKDOWN_EXTENSIONS:
        return "markdown"
    if not PLAIN_SUFFIX.fullmatch(suffix):
        return "text"
    return PLAIN_ALIASES.get(suffix[1:], suffix[1:])


# A `.h` header is C or C++: C++ says so by its own syntax, which C never uses (read with
# comments and string literals blanked: `/* see foo::bar */` and `"fe80::1"` are no C++).
CPP_HEADER = re.compile(
    r"^[ \t]*(?:(?:class|namespace)[ \t]+\w|template[ \t]*<|using[ \t]+namespace\b|"
    r"(?:public|private|protected)[ \t]*:)|\w::\w",
    re.MULTILINE,
)
C_NOISE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', re.DOTALL)


class HeaderChunker:
    """`.h`: cut as C++ when its text is C++ (classes, namespaces, templates), else as C."""

    language = "c"

    def __init__(self, c: Chunker, cpp: Chunker) -> None:
        self.c, self.cpp = c, cpp

    def chunk(self, path: str, text: str) -> list[Chunk]:
        cpp = CPP_HEADER.search(C_NOISE.sub(" ", text))
        return (self.cpp if cpp else self.c).chunk(path, text)


class ChunkerRegistry:
    """Chunkers built once per run, shared by every file of their kind."""

    def __init__(self, counter: TokenCounter, parse_timeout_s: float = 5.0) -> None:
        self.counter = counter
        self.parse_timeout_s = parse_timeout_s
        self._chunkers: dict[str, Chunker] = {}

    def for_path(self, path: str) -> Chunker:
        language = language_of(path)
        if path.lower().endswith(".h"):
            if "c-header" not in self._chunkers:
                c, cpp = self._for_language("c"), self._for_language("cpp")
                self._chunkers["c-header"] = HeaderChunker(c, cpp)
            return self._chunkers["c-header"]
        return self._for_language(language)

    def _for_language(self, language: str) -> Chunker:
        if language not in self._chunkers:
            chunker: Chunker
            if language in CODE_EXTENSIONS.values():
                chunker = TreeSitterChunker(language, self.counter, self.parse_timeout_s)
            elif language == "markdown":
                chunker = MarkdownChunker(self.counter)
            elif language == "ipynb":
                chunker = NotebookChunker(self.counter)
            else:
                chunker = WindowChunker(language, self.counter)
            self._chunkers[language] = chunker
        return self._chunkers[language]

    def chunk(self, path: str, text: str) -> list[Chunk]:
        return self.for_path(path).chunk(path, text)


__all__ = ["CHUNKER_VERSION", "Chunker", "ChunkerRegistry", "TokenCounter", "language_of"]
