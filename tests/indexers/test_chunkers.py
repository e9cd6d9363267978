from __future__ import annotations

import os
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

from contextd.embedder import default_model_dir
from contextd.indexers import ChunkerRegistry, TokenCounter, language_of
from contextd.indexers.code import TreeSitterChunker
from contextd.indexers.markdown import MarkdownChunker

FIXTURES = Path(__file__).parent.parent / "fixtures" / "languages"

EXPECTED_SYMBOLS = {
    "sample.py": ["top_level", "Greeter", "Greeter.__init__", "Greeter.greet"],
    "sample.js": ["readConfig", "parseArgs", "Server", "Server.constructor", "Server.listen"],
    "sample.ts": ["Options", "Mode", "runTask", "TaskQueue", "TaskQueue.push"],
    "sample.go": ["Cache", "NewCache", "Cache.Get", "Hello"],
    "sample.rs": ["Registry", "Registry.new", "Registry.insert", "checksum"],
    "Sample.java": ["Inventory", "Inventory.Inventory", "Inventory.count", "Shelf", "Shelf.stack"],
    "sample.c": ["point", "add_points", "greeting"],
    "sample.cpp": ["geometry", "geometry.Shape", "geometry.scale"],
    "sample.rb": [
        "Billing",
        "Billing.Invoice",
        "Billing.Invoice.initialize",
        "Billing.Invoice.parse",
    ],
}


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter.from_model_dir(default_model_dir())


@pytest.mark.parametrize("name", sorted(EXPECTED_SYMBOLS))
def test_each_language_yields_its_symbols(name: str, counter: TokenCounter) -> None:
    text = (FIXTURES / name).read_text()
    chunker = TreeSitterChunker(language_of(name), counter)
    found = chunker.symbols(text)
    for symbol in EXPECTED_SYMBOLS[name]:
        assert symbol in found, f"{name}: {symbol} not in {found}"
    chunks = chunker.chunk(name, text)
    assert chunks, name
    covered = {line for c in chunks for line in range(c.start_line, c.end_line + 1)}
    code_lines = {i for i, line in enumerate(text.splitlines(), 1) if line.strip()}
    assert code_lines <= covered, f"{name}: lines {sorted(code_lines - covered)} not in any chunk"


@pytest.mark.parametrize(
    ("language", "text", "definitions"),
    [
        (  # a decorator over several lines belongs to its function
            "python",
            "@app.route(\n    '/orders/<int:id>/refund',\n    methods=['POST'],\n)\n"
            "def refund(id):\n    return id\n",
            [("refund", 0)],
        ),
        ("cpp", "template <typename T>\nT clamp(T v) {\n  return v;\n}\n", [("clamp", 0)]),
        (
            "typescript",
            "@Component({\n  selector: 'cart',\n})\nexport class Cart {\n"
            "  onClick = (e: Event) => {};\n}\n",
            [("Cart", 0)],
        ),
        (  # each type of a grouped declaration is named for itself
            "go",
            "package x\n\ntype (\n\tConfig struct{ A int }\n\n"
            "\tMiddleware interface{ Wrap() }\n)\n",
            [("Config", 3), ("Middleware", 5)],
        ),
        (  # functions as older JavaScript writes them
            "javascript",
            "var legacy = function (a) {\n  return a;\n};\n"
            "module.exports.frob = function () {};\nFoo.prototype.bar = function () {};\n",
            [("legacy", 0), ("module.exports.frob", 3), ("Foo.prototype.bar", 4)],
        ),
        (  # express's getters, a chained assignment, and a test suite's blocks
            "javascript",
            "defineGetter(req, 'host', function host() {\n  return this.get('Host');\n});\n"
            "res.set = res.header = function header(field) {};\n"
            "describe('res', function () {\n  it('should set a cookie', () => {});\n});\n",
            [("host", 0), ("res.set", 3), ("res", 4)],
        ),
        (
            "javascript",
            "it('can\\'t parse \"x\"', () => {});\na.b = c.d = e.f = function () {};\n",
            [('can\'t parse "x"', 0), ("a.b", 1)],
        ),
        (
            "typescript",
            "test('retries on 503', async () => {\n  await ky(url);\n});\n",
            [("retries on 503", 0)],
        ),
    ],
)
def test_a_definition_takes_its_decorators_and_each_form_its_name(
    language: str, text: str, definitions: list[tuple[str, int]], counter: TokenCounter
) -> None:
    found = TreeSitterChunker(language, counter)._parse(text) or []
    assert [(d.name, d.start) for d in found] == definitions


def test_rust_and_java_definitions_are_named_as_their_source_says(
    counter: TokenCounter,
) -> None:
    rust = (
        "impl From<bool> for Value {\n    fn from(f: bool) -> Self { Value::Bool(f) }\n}\n"
        "impl<'a> Entry<'a> {\n    pub fn key(&self) -> &String { todo!() }\n}\n"
        "impl<'de, R: Read<'de>> Deserializer<'de> for &mut Reader<R> {\n"
        "    fn deserialize_any(self) {}\n}\n"
        "static POW10: [f64; 2] = [1e0, 1e1];\nconst MAX: usize = 5;\n"
        "type Result<T> = std::result::Result<T, Error>;\n"
        "pub trait Read<'de> {\n    fn next(&mut self) -> Option<u8>;\n}\n"
    )
    assert TreeSitterChunker("rust", counter).symbols(rust) == [
        "From<bool> for Value",
        "From<bool> for Value.from",
        "Entry",
        "Entry.key",
        "Deserializer<'de> for Reader",
        "Deserializer<'de> for Reader.deserialize_any",
        "POW10",
        "MAX",
        "Result",
        "Read",
        "Read.next",
    ]
    java = (
        "public final class TypeAdapters {\n"
        "  public static final TypeAdapter<Class> CLASS = new TypeAdapter<Class>() {\n"
        "    @Override public Class read(JsonReader in) { return null; }\n  };\n}\n"
        "public enum FieldNamingPolicy {\n  IDENTITY() {\n"
        "    @Override public String translateName(Field f) { return f.getName(); }\n  };\n}\n"
    )
    assert TreeSitterChunker("java", counter).symbols(java) == [
        "TypeAdapters",
        "TypeAdapters.CLASS",
        "TypeAdapters.CLASS.read",
        "FieldNamingPolicy",
        "FieldNamingPolicy.IDENTITY",
        "FieldNamingPolicy.IDENTITY.translateName",
    ]


def test_a_test_suites_blocks_are_named_by_their_titles(counter: TokenCounter) -> None:
    body = "\n".join(f"    expect(res.get('X-{i}')).toBe('{i}');" for i in range(40))
    text = (
        "describe('res', function () {\n  describe('.cookie(name, string)', function () {\n"
        + "".join(f"    it('sets cookie {n}', function () {{\n{body}\n    }});\n" for n in range(3))
        + "  });\n});\n"
    )
    chunks = TreeSitterChunker("javascript", counter).chunk("test/res.cookie.js", text)
    symbols = {c.symbol for c in chunks}
    assert {f"res.cookie(name, string).sets cookie {n}" for n in range(3)} <= symbols


def test_a_big_class_is_split_into_its_methods(counter: TokenCounter) -> None:
    body = "\n".join(f"        total += {i} * value  # step {i}" for i in range(60))
    methods = "\n\n".join(
        f"    def method_{n}(self, value):\n        total = 0\n{body}\n        return total"
        for n in range(3)
    )
    text = f"class Big:\n    '''Many methods.'''\n\n{methods}\n"
    chunks = TreeSitterChunker("python", counter).chunk("big.py", text)
    symbols = {c.symbol for c in chunks}
    assert {"Big.method_0", "Big.method_1", "Big.method_2"} <= symbols
    assert all(counter.count(c.embed_text) <= counter.content_limit for c in chunks)


def test_markdown_is_cut_at_headings_with_a_heading_path(counter: TokenCounter) -> None:
    text = "# Guide\n\n" + "\n\n".join(
        f"## Part {i}\n\n" + " ".join(f"word{j}" for j in range(120)) for i in range(3)
    )
    text += "\n\n```sh\n# not a heading\n```\n"
    chunks = ChunkerRegistry(counter).chunk("guide.md", text)
    symbols = [c.symbol for c in chunks]
    assert "Guide > Part 0" in symbols and "Guide > Part 2" in symbols
    assert not any("not a heading" in s for s in symbols)


def test_markdown_headings_are_read_as_commonmark_reads_them(counter: TokenCounter) -> None:
    """Front matter, a ```` fence around ``` lines, setext headings, `C#`, indented
    headings: each gave a wrong heading path."""
    body = " ".join(f"word{j}" for j in range(90))
    text = (
        "---\ntitle: Guide\n# generated by the site tool, do not edit\n---\n"
        f"Setext Title\n============\n\n{body}\n\n"
        "````md\n```sh\n# a comment inside the fence\n```\n````\n\n"
        f"# Using C#\n\n{body}\n\n   ## Indented\n\n{body}\n\n"
        f"Options\n-------\n\n{body}\n\n- a list item\n---\n\n{body}\n"
        f"\nTuning the\nworkers\n-------\n\n{body}\n\n"  # a setext title: its whole paragraph
        f"\n{body}\n-------\n\n{body}\n\n"  # a long paragraph's title: its opening words
        "<pre>\nSection 1 of the licence\n------------------------\n</pre>\n\n"
        '<div align="center">\nA banner\n========\n</div>\n\n'
        f'<a id="anchor"></a>\n### Anchored\n\n{body}\n'
    )
    symbols = [c.symbol for c in MarkdownChunker(counter).chunk("guide.md", text)]
    assert {"Setext Title", "Using C#", "Using C# > Indented", "Using C# > Options"} <= set(
        symbols
    ), symbols
    assert "Using C# > Tuning the workers" in symbols, symbols
    assert "Using C# > word0 word1 word2" in " ".join(symbols) and all(
        len(s) < 250 for s in symbols
    ), symbols
    assert any(s.endswith(" … > Anchored") for s in symbols), symbols
    for wrong in ("generated", "comment", "list", "licence", "banner"):  # not headings
        assert not any(wrong in s for s in symbols), (wrong, symbols)


def test_a_headings_markup_is_not_in_its_path(counter: TokenCounter) -> None:
    """A README's title with its badges was the start of every section's path."""
    body = " ".join(f"word{j}" for j in range(90))
    text = (
        "# Serde JSON &emsp; [![Build Status]][actions] [![Latest Version]][crates.io]\n\n"
        f"{body}\n\n## [Install](#install) with <kbd>cargo</kbd>\n\n{body}\n\n"
        f"## The `**kwargs` of *every* **call**\n\n{body}\n"
        f"## matrix[i][j] times 2*3*4\n\n{body}\n"  # code, not markup
    )
    symbols = list(
        dict.fromkeys(c.symbol for c in MarkdownChunker(counter).chunk("README.md", text))
    )
    assert symbols == [
        "Serde JSON",
        "Serde JSON > Install with cargo",
        "Serde JSON > The **kwargs of every call",
        "Serde JSON > matrix[i][j] times 2*3*4",
    ], symbols
    # A paragraph of unclosed markup is a setext title: 72 KB of it took 36 s.
    started = time.perf_counter()
    MarkdownChunker(counter).chunk("notes.md", "x " + "*a [b `c " * 40_000 + "\n---\n")
    assert time.perf_counter() - started < 5


APACHE = """Copyright (C) 2010 Google Inc.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
See the License for the specific language governing permissions and
limitations under the License."""


def test_a_licence_header_is_not_indexed_and_what_follows_it_is(counter: TokenCounter) -> None:
    """236 of gson's chunks began with the same licence; Go's package comment stays."""
    block = "/*\n" + "".join(f" * {line}\n".replace(" \n", "\n") for line in APACHE.split("\n"))
    java = block + " */\n\npackage com.acme;\n\n/** Reads tokens. */\nclass Reader {}\n"
    go = "".join(f"// {line}\n" for line in APACHE.split("\n")).replace("// \n", "//\n")
    go += "\n// Package acme reads tokens.\npackage acme\n\nfunc Read() {}\n"
    py = "#!/usr/bin/env python\n" + "".join(f"# {line}\n" for line in APACHE.split("\n"))
    py += '"""Reads tokens."""\n\ndef read():\n    pass\n'
    for path, text, first in (
        ("Reader.java", java, "package com.acme;"),
        ("acme.go", go, "// Package acme reads tokens."),
        ("read.py", py, '"""Reads tokens."""'),
    ):
        chunks = ChunkerRegistry(counter).chunk(path, text)
        joined = "\n".join(c.text for c in chunks)
        assert "Licensed under" not in joined and "Copyright" not in joined, (path, joined)
        assert chunks[0].text.startswith(first), (path, chunks[0].text)
        assert chunks[0].start_line == text.split("\n").index(first) + 1
    # A comment that is not a licence stays, and so does a licence mentioned later on.
    text = "// Reads tokens from a stream.\n\n// Copyright 2020 Acme\npackage acme\n"
    chunks = ChunkerRegistry(counter).chunk("acme.go", text)
    assert chunks[0].start_line == 1 and "Copyright" in chunks[0].text
    # Only what opens with licence words goes (the diff review's cases): a description
    # that cites a copyright, a doc below the licence, code on the banner's line.
    for path, text, first_kept in (
        ("drv.c", "// SPDX-License-Identifier: GPL-2.0\n/*\n * Driver for the Foo USB "
         "adapter.\n *\n * Copyright (C) 2020 Foo\n */\nint probe(void) { return 0; }\n", 2),
        ("year.py", "# Computes the copyright year of a file.\n\ndef year():\n    return 1\n", 1),
        ("lib.js", "/*! lib | Copyright (c) 2020 Acme | MIT */!function(){var a=1;}();\n", 1),
    ):  # fmt: skip
        chunks = ChunkerRegistry(counter).chunk(path, text)
        assert chunks[0].start_line == first_kept, (path, chunks[0].text)
        assert "probe" in text or "year" in text or "function" in chunks[0].text


def test_fixture_markdown_keeps_nested_headings(counter: TokenCounter) -> None:
    chunks = ChunkerRegistry(counter).chunk("sample.md", (FIXTURES / "sample.md").read_text())
    assert any("Guide" in c.symbol for c in chunks)
    assert "pip install thing" in "\n".join(c.text for c in chunks)


def test_plain_text_windows_overlap_and_cover_every_line(counter: TokenCounter) -> None:
    text = "\n".join(f"line {i} of a long plain text file with some words" for i in range(400))
    chunks = ChunkerRegistry(counter).chunk("notes.txt", text)
    assert len(chunks) > 3
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 400
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start_line <= a.end_line + 1, "a gap between windows"
    assert any(b.start_line <= a.end_line for a, b in zip(chunks, chunks[1:], strict=False))


def test_a_window_is_never_only_the_last_ones_overlap(counter: TokenCounter) -> None:
    """Before a line too long to share a window, the overlap alone made a window: a copy
    of the previous one's tail (the stdlib's Makefile had line 443 stored twice, and
    `doctor` reported a duplicate it could not repair)."""
    text = "\n".join(
        [f"VAR_{i} = value {i} for the build of some module" for i in range(60)]
        + ["", "", "# === Definitions added by makesetup ===", "", ""]
        + ["LIBS=" + " ".join(f"$(MODULE_{i}_LDFLAGS)" for i in range(120))]
    )
    chunks = ChunkerRegistry(counter).chunk("Makefile", text)
    before = [c for c in chunks if c.end_line < 66]  # line 66's pieces share their line
    assert any("makesetup" in c.text for c in before)
    for a, b in zip(before, before[1:], strict=False):
        assert b.end_line > a.end_line, f"lines {b.start_line}-{b.end_line} again"


def test_a_single_overlong_line_is_split_not_truncated(counter: TokenCounter) -> None:
    text = " ".join(f"token{i}" for i in range(5000))
    chunks = ChunkerRegistry(counter).chunk("data.txt", text)
    assert len(chunks) > 10
    assert all(counter.count(c.embed_text) <= counter.content_limit for c in chunks)
    assert "token4999" in chunks[-1].text and "token0" in chunks[0].text


def test_a_parse_that_times_out_falls_back_to_windows(counter: TokenCounter) -> None:
    text = "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(3000))
    chunker = TreeSitterChunker("python", counter, timeout_s=1e-6)
    chunks = chunker.chunk("slow.py", text)
    assert chunks and all(c.symbol == "" for c in chunks)
    assert chunks[-1].end_line >= text.count("\n") - 1


def test_no_chunk_exceeds_the_model_limit_on_fixtures_and_the_stdlib(counter: TokenCounter) -> None:
    registry = ChunkerRegistry(counter)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(FIXTURES.iterdir()) + sorted(stdlib.glob("*.py"))[:120]
    n = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for chunk in registry.chunk(path.name, text):
            n += 1
            assert counter.count(chunk.embed_text) <= counter.content_limit, (
                path,
                chunk.start_line,
            )
    assert n > 1000


REQUESTS_GIT = Path(os.environ.get("CONTEXTD_REQUESTS_GIT", "/work/.mirror/psf+requests/repo"))


@pytest.mark.skipif(
    not REQUESTS_GIT.is_dir(),
    reason="no psf/requests clone on this machine (set CONTEXTD_REQUESTS_GIT to a clone's git dir)",
)
def test_no_chunk_exceeds_the_model_limit_on_the_requests_tree(counter: TokenCounter) -> None:
    git = ["git", "--git-dir", str(REQUESTS_GIT)]
    listed = subprocess.run(
        [*git, "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.split()
    registry = ChunkerRegistry(counter)
    n = 0
    for path in listed:
        if not path.endswith((".py", ".md", ".rst", ".txt", ".cfg", ".toml", ".yml")):
            continue
        text = subprocess.run(
            [*git, "show", f"HEAD:{path}"], capture_output=True, check=True
        ).stdout.decode("utf-8", "replace")
        for chunk in registry.chunk(path, text):
            n += 1
            assert counter.count(chunk.embed_text) <= counter.content_limit, (
                path,
                chunk.start_line,
            )
    assert n > 1000


def test_appending_to_a_long_text_keeps_the_earlier_windows(counter: TokenCounter) -> None:
    registry = ChunkerRegistry(counter)
    text = "\n".join(f"paragraph line {i} with a handful of ordinary words" for i in range(300))
    before = registry.chunk("notes.txt", text)
    after = registry.chunk("notes.txt", text + "\none more line at the end\n")
    unchanged = {c.hash for c in before} & {c.hash for c in after}
    assert len(unchanged) >= len(before) - 2, "only the last windows may change"


def _notebook(*cells: dict, indent: int | None = 1) -> str:
    """A notebook as Jupyter (nbformat) writes it: one source line to a line of the file."""
    import json

    nb = {"cells": list(cells), "metadata": {"kernelspec": {"language": "python"}}}
    return json.dumps(nb | {"nbformat": 4, "nbformat_minor": 5}, indent=indent, sort_keys=True)


def test_a_notebook_is_cut_by_cells_and_its_lines_are_the_files(counter: TokenCounter) -> None:
    import json

    printed = [f"row {i}: tenure {i * 3} months\n" for i in range(60)]  # a long output
    text = _notebook(
        {"cell_type": "markdown", "metadata": {}, "source": ["# Churn\n", "\n", "## Loading\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1,
         "outputs": [{"name": "stdout", "output_type": "stream", "text": printed}],
         "source": ['df = pd.read_csv("churn.csv")\n', "print(df.head(60))"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 2, "outputs": [],
         "source": []},
        {"cell_type": "markdown", "metadata": {}, "source": "## Model"},
        {"cell_type": "code", "metadata": {}, "execution_count": 3, "outputs": [],
         "source": ["def fit_churn_model(df):\n", '    """Boosting on tenure."""\n',
                    "    return model.fit(df[['tenure']], df.churn)"]},
    )  # fmt: skip
    chunks = ChunkerRegistry(counter).chunk("churn.ipynb", text)
    file_lines = text.split("\n")
    for c in chunks:  # each line of a chunk is the source line the file holds there
        for n, line in enumerate(c.text.split("\n"), c.start_line):
            if line:
                assert f'"{json.dumps(line)[1:-1]}' in file_lines[n - 1]
    texts = "\n".join(c.text for c in chunks)
    assert 'df = pd.read_csv("churn.csv")\nprint(df.head(60))' in texts
    assert "row 7: tenure" not in texts and '"source"' not in texts  # no outputs, no JSON
    # Jupyter writes a cell's outputs before its source: the 60 printed lines keep the
    # first heading apart from the code under it; the small cells after it are one chunk.
    heading, code = chunks
    assert heading.text == "# Churn\n\n## Loading" and heading.symbol == "Churn > Loading"
    assert "read_csv" in code.text and "def fit_churn_model" in code.text
    assert code.symbol == "Churn > Loading, Churn > Model" and code.language == "ipynb"


@pytest.mark.parametrize("layout", ["one line", "not json"])
def test_a_notebook_written_otherwise_is_cut_as_text(counter: TokenCounter, layout: str) -> None:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "source": ["x = 41\n", "y = x"]}
    text = _notebook(cell, indent=None) if layout == "one line" else '{"cells": [x = 41'
    chunks = ChunkerRegistry(counter).chunk("a.ipynb", text)
    assert chunks and all(c.start_line == c.end_line == 1 for c in chunks)
    assert "x = 41" in "".join(c.text for c in chunks)


def test_a_header_in_cpp_is_cut_as_cpp_and_one_in_c_as_c(counter: TokenCounter) -> None:
    registry = ChunkerRegistry(counter)
    cpp = (FIXTURES / "sample.cpp").read_text()
    (chunk,) = {c.language for c in registry.chunk("include/geometry.h", cpp)}
    assert chunk == "cpp"
    symbols = " ".join(c.symbol for c in registry.chunk("include/geometry.h", cpp))
    assert "geometry" in symbols
    guard = '#ifdef __cplusplus\nextern "C" {\n#endif\n'  # C made callable from C++
    c = guard + "struct point { int x, y; };\n#ifdef __cplusplus\n}\n#endif\n"
    assert {ch.language for ch in registry.chunk("include/point.h", c)} == {"c"}
    for c_only in (
        "struct p { int x; };\n/* as foo::bar does */\n",
        "   classify_t classify(int);\n",
    ):
        assert {ch.language for ch in registry.chunk("p.h", c_only)} == {"c"}, c_only
