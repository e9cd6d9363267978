from __future__ import annotations

from pathlib import Path

from contextd.app import App
from contextd.lexical import code_tokens, query_terms, token_set
from contextd.search import search
from tests.conftest import write


def test_identifiers_are_split_and_kept_whole() -> None:
    tokens = code_tokens("def resolve_redirects(self): return os.path.join(HTTPAdapter, getURL2)")
    assert {"resolve_redirects", "resolve", "redirects"} <= set(tokens)
    assert {"os.path.join", "os", "path", "join"} <= set(tokens)
    assert {"httpadapter", "http", "adapter"} <= set(tokens)
    assert {"geturl2", "get", "url", "2"} <= set(tokens)


def test_a_token_set_is_the_code_tokens_of_the_words_holding_what_is_asked() -> None:
    text = "def resolve_redirects(self, resp):\n    return self.getURL2(resp) or os.path.join"
    assert token_set(text) == set(code_tokens(text))
    # `within`: the words holding "redirect" or "url" (the search's coverage asks this way)
    held = {"resolve_redirects", "resolve", "redirects", "self.geturl2", "self", "geturl2"}
    assert token_set(text, {"redirect", "url"}) == held | {"get", "url", "2"}
    assert token_set(text, {"nowhere"}) == set()


def test_identifier_shaped_queries_are_told_from_prose() -> None:
    from contextd.lexical import looks_like_identifier

    for q in ["resolve_redirects", "HTTPAdapter.send", "getURL", "err42", "os.path.join"]:
        assert looks_like_identifier(q), q
    for q in ["redirects", "how are redirects followed", "Session", "", "a b"]:
        assert not looks_like_identifier(q), q


def test_query_terms_drop_stopwords() -> None:
    assert query_terms("how are redirects followed") == ["redirects", "followed"]


def test_an_exact_identifier_finds_its_definition_first(app: App, repo: Path) -> None:
    write(repo, "src/shop/tax.py", "def compute_vat_surcharge(amount):\n    return amount * 0.2\n")
    app.index(app.catalog.add_source("shop", repo, "git"))
    top = search(app, "compute_vat_surcharge", k=3).hits[0]
    assert top.path == "src/shop/tax.py" and top.lexical == 1.0


def test_the_lexical_index_follows_edits_and_deletes(app: App, repo: Path) -> None:
    app.index(app.catalog.add_source("shop", repo, "git"))
    assert app.catalog.lexical(["parse_address"], 5)
    (repo / "src/shop/mail.py").unlink()
    app.index(app.catalog.source("shop"))
    assert app.catalog.lexical(["parse_address"], 5) == []
    fts_rows = app.catalog.db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
    assert fts_rows == len(app.catalog.chunk_ids("shop"))


def test_windows_of_one_function_come_back_as_one_result(app: App, repo: Path) -> None:
    steps = "\n".join(
        f"    total = total + step_{i}(order)  # apply pricing rule {i}" for i in range(80)
    )
    write(
        repo,
        "src/shop/pricing.py",
        f"def apply_pricing_rules(order):\n    total = 0\n{steps}\n    return total\n",
    )
    tariffs = "\n".join(  # each line longer than windows overlap by: one is shared anyway
        f"    total = total + tariff_{i}(order, customer.region, currency.code, "
        f"discounts[{i}], tax_rules.for_year(year))  # tariff rule {i} for this order line"
        for i in range(40)
    )
    write(repo, "src/shop/tariffs.py", f"def apply_tariffs(order):\n    total = 0\n{tariffs}\n")
    app.index(app.catalog.add_source("shop", repo, "git"))
    hits = search(app, "apply pricing rules to the order", k=8).hits
    assert [h.symbol for h in hits].count("apply_pricing_rules") == 1
    hits = search(app, "apply tariff rules to the order", k=8).hits
    assert [h.symbol for h in hits].count("apply_tariffs") == 1


def test_two_definitions_with_one_name_are_two_results(app: App, repo: Path) -> None:
    """Overloads and a property's getter and setter each come back: an agent changing
    one should see the others."""

    def body(what: str) -> str:
        return "\n".join(
            f"        audit.record('{what}', step={i}, ledger=self.ledger_id)" for i in range(14)
        )

    write(
        repo,
        "src/shop/Ledger.java",
        "class Ledger {\n"
        f"    void deposit(long cents) {{\n{body('cents')}\n    }}\n\n"
        f"    void close() {{\n{body('close')}\n    }}\n\n"  # another method between them
        f"    void deposit(BigDecimal amount) {{\n{body('amount')}\n    }}\n}}\n",
    )
    write(
        repo,
        "src/shop/ledger.py",
        "class Ledger:\n    @property\n    def balance(self):\n"
        f"{body('read balance')}\n        return self._balance\n\n"
        "    @balance.setter\n    def balance(self, value):\n"
        f"{body('set balance')}\n        self._balance = value\n",
    )
    app.index(app.catalog.add_source("shop", repo, "git"))
    for query, symbol in (
        ("deposit into the ledger", "Ledger.deposit"),
        ("ledger balance", "Ledger.balance"),
    ):
        hits = [h for h in search(app, query, k=8).hits if h.symbol == symbol]
        assert len(hits) == 2, (query, [(h.start_line, h.end_line) for h in hits])
        assert hits[0].end_line < hits[1].start_line or hits[1].end_line < hits[0].start_line


def test_tests_rank_below_code_unless_asked_for(app: App, repo: Path) -> None:
    write(
        repo,
        "tests/test_cart.py",
        "def test_total_price_sums_items():\n    cart = Cart()\n"
        "    cart.add_item('a', 2)\n    assert cart.total_price() == 2\n",
    )
    write(  # JavaScript's way: beside the code it tests
        repo,
        "src/shop/cart.test.js",
        "// The total price of the cart items: the sum of all item prices in the cart.\n"
        "test('total price of the cart items sums the items', () => {\n"
        "  const cart = new Cart();\n  cart.addItem('a', 2);\n"
        "  expect(cart.totalPrice()).toBe(2);  // total price of the cart items\n});\n",
    )
    app.index(app.catalog.add_source("shop", repo, "git"))
    first = [h.path for h in search(app, "total price of the cart items", k=2).hits]
    assert first[0] == "src/shop/cart.py" and "src/shop/cart.test.js" not in first
    asked = [h.path for h in search(app, "test for the total price", k=2).hits]
    assert set(asked) == {"tests/test_cart.py", "src/shop/cart.test.js"}
    write(  # starlette's changelog is docs/release-notes.md: it outranked the code
        repo,
        "docs/release-notes.md",
        "## 0.30.0\n\n* The total price of the cart items now sums every item price "
        "in the cart: total price of the cart items.\n",
    )
    app.index(app.catalog.source("shop"))
    first = [h.path for h in search(app, "total price of the cart items", k=2).hits]
    assert first[0] == "src/shop/cart.py" and "docs/release-notes.md" not in first, first


def test_rust_tests_inside_the_code_rank_below_it_unless_asked_for(
    app: App, tmp_path: Path
) -> None:
    """`#[cfg(test)] mod tests` sits in the file it tests: its path says nothing."""
    root = tmp_path / "walker"
    tests = "\n".join(
        f"    #[test]\n    fn skips_hidden_files_{i}() {{\n"
        f"        // skip hidden files and directories when walking, case {i}\n"
        f'        assert!(walk_skipping_hidden("dir{i}").is_empty());\n    }}'
        for i in range(4)
    )
    write(
        root,
        "src/walk.rs",
        "/// Whether hidden files and directories are skipped while walking.\n"
        "pub fn hidden(&mut self, yes: bool) -> &mut WalkBuilder {\n"
        "    self.hidden = yes;\n    self\n}\n\n"
        f"#[cfg(test)]\nmod tests {{\n    use super::*;\n\n{tests}\n}}\n",
    )
    app.index(app.catalog.add_source("walker", root, "folder"))
    first = search(app, "skip hidden files and directories", k=1).hits[0]
    assert first.symbol == "hidden"
    asked = search(app, "tests that hidden files are skipped", k=1).hits[0]
    assert asked.symbol.split(".")[0] == "tests"


def test_a_unique_string_is_found_first_whatever_its_meaning(app: App, repo: Path) -> None:
    with open(repo / "src/shop/cart.py", "a") as f:
        f.write("\n# zqxprobe4471 marker\n")
    app.index(app.catalog.add_source("shop", repo, "git"))
    top = search(app, "zqxprobe4471", k=3).hits[0]
    assert top.path == "src/shop/cart.py" and "zqxprobe4471" in top.text


def test_a_lone_rare_word_is_looked_up_whatever_its_shape(app: App, tmp_path: Path) -> None:
    """Shaped like no identifier (no digit, '_' or capital), a word found in one chunk
    came first for 68 of 100 such words among 300 files like these."""
    import random
    import string

    rng = random.Random(1)
    topics = [
        "order",
        "invoice",
        "customer",
        "payment",
        "refund",
        "parcel",
        "address",
        "tax",
        "cart",
        "session",
    ]
    words = {}
    for i in range(60):
        word = "zq" + "".join(rng.choice(string.ascii_lowercase) for _ in range(9))
        a, b, c = rng.sample(topics, 3)
        body = "\n".join(f"    {c} = {c} + {rng.randrange(1000)}  # {a} {b}" for _ in range(12))
        text = f'def {a}_{b}_{i}({c}):\n    """Handle the {a} of a {b}. Marker {word}."""\n{body}\n'
        write(tmp_path / "mods", f"mod_{i}.py", text)
        words[f"mod_{i}.py"] = word
    app.index(app.catalog.add_source("mods", tmp_path / "mods", "folder"))
    missed = [w for path, w in words.items() if search(app, w, k=3).hits[0].path != path]
    assert missed == []


def test_a_filtered_keyword_search_is_the_best_of_the_matches_that_pass(
    app: App, tmp_path: Path
) -> None:
    """Filtered by language or source, the keyword side returns exactly the first matches
    of the whole ranking that pass the filter, in its order, however many others match
    better (a filter most chunks pass is read from the top of the whole ranking)."""
    for name, files in (("books", 48), ("notes", 16)):
        root = tmp_path / name
        for i in range(files):
            count = 1 + (i * 7) % 11  # how often the word is used: the ranking's order
            if i % 4 == 0:  # a quarter are Markdown, and they use the word the most
                write(root, f"doc{i}.md", f"# Ledger {i}\n\n" + "ledger entry. " * (count + 12))
            else:
                write(root, f"m{i}.py", f"def f{i}():\n" + "    ledger = 1\n" * count)
        app.index(app.catalog.add_source(name, root, "folder"))
    ranking = app.catalog.lexical(["ledger"], 1000)
    assert len(ranking) == 64
    where = {
        cid: (s.source, s.chunk.language)
        for cid, s in ((s.id, s) for s in app.catalog.chunks([i for i, _ in ranking]))
    }
    for limit in (3, 12, 40, 70):
        for sources, languages in (
            (None, ["python"]),  # three quarters pass, the best of all do not
            (None, ["markdown"]),  # a quarter pass
            (["books"], None),
            (["notes"], ["python"]),
            (["books", "notes"], ["python", "markdown"]),
        ):
            want = [
                (i, s)
                for i, s in ranking
                if (sources is None or where[i][0] in sources)
                and (languages is None or where[i][1] in languages)
            ][:limit]
            got = app.catalog.lexical(["ledger"], limit, sources, languages)
            assert got == want, (limit, sources, languages)


def test_a_name_assigned_through_a_dotted_path_is_found_by_its_own_name(
    app: App, tmp_path: Path
) -> None:
    """`exports.compileETag = function` defines compileETag: asked for by that name, the
    definition comes first, ahead of the files that import and call it."""
    root = tmp_path / "web"
    write(
        root,
        "lib/utils.js",
        "exports.compileETag = function (val) {\n  if (typeof val === 'function') {\n"
        "    return val;\n  }\n  return createETagGenerator({ weak: val !== 'strong' });\n};\n",
    )
    calls = "\n".join(f"  app.set('etag fn {i}', compileETag(setting{i}));" for i in range(6))
    write(
        root,
        "lib/application.js",
        "var compileETag = require('./utils').compileETag;\n\n"
        f"app.defaultConfiguration = function () {{\n{calls}\n}};\n",
    )
    app.index(app.catalog.add_source("web", root, "folder"))
    answer = search(app, "compileETag", k=3)
    assert answer.hits[0].path == "lib/utils.js"
    assert answer.hits[0].symbol == "exports.compileETag"
    assert answer.verdict != "not_found"
