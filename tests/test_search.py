"""Retrieval with the real model: the right chunk comes first, filters hold, secrets never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextd.app import App
from contextd.errors import ContextdError, SourceError
from contextd.search import search
from tests.conftest import write

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def indexed(app: App, repo: Path) -> App:
    app.index(app.catalog.add_source("shop", repo, "git"))
    return app


@pytest.mark.parametrize(
    ("query", "path", "symbol"),
    [
        ("send the receipt to the customer by email", "src/shop/mail.py", "send_receipt_email"),
        ("sum of all item prices in the cart", "src/shop/cart.py", "Cart"),
        ("how long do customers have to return goods", "docs/guide.md", "Shop guide > Refunds"),
    ],
)
def test_the_relevant_chunk_ranks_first(indexed: App, query: str, path: str, symbol: str) -> None:
    top = search(indexed, query, k=3)[0]
    assert (top.path, top.source) == (path, "shop")
    assert symbol in top.symbol
    assert 0 < top.dense <= 1 and top.score > 0
    assert top.start_line >= 1 and top.end_line >= top.start_line


def test_filters_restrict_by_path_language_and_source(indexed: App, tmp_path: Path) -> None:
    hits = search(indexed, "render the basket items", k=5, path_glob="src/*")
    assert hits and all(h.path.startswith("src/") for h in hits)
    assert {h.language for h in search(indexed, "basket", k=5, language="javascript")} == {
        "javascript"
    }
    other = tmp_path / "other"
    write(other, "basket.py", "def basket():\n    return []\n")
    indexed.index(indexed.catalog.add_source("other", other, "folder"))
    assert {h.source for h in search(indexed, "basket", k=10, sources=["other"])} == {"other"}
    with pytest.raises(SourceError, match="contextd sources"):
        search(indexed, "basket", sources=["nope"])
    with pytest.raises(ContextdError, match="empty"):
        search(indexed, "   ")


def test_a_secret_in_an_added_folder_is_never_returned(app: App, tmp_path: Path) -> None:
    root = tmp_path / "service"
    write(root, ".env", f"AWS_SECRET_ACCESS_KEY={SECRET}\nDATABASE_URL=postgres://x\n")
    write(root, "config/.env.production", f"AWS_SECRET_ACCESS_KEY={SECRET}\n")
    write(root, "settings.py", "import os\nAWS_KEY = os.environ['AWS_SECRET_ACCESS_KEY']\n")
    app.index(app.catalog.add_source("service", root, "folder"))
    for query in ["AWS_SECRET_ACCESS_KEY", SECRET, "database url secret access key", "env file"]:
        for hit in search(app, query, k=10):
            assert ".env" not in hit.path and SECRET not in hit.text
    stored = b"".join(p.read_bytes() for p in app.settings.home.rglob("*") if p.is_file())
    assert SECRET.encode() not in stored


def test_searching_while_the_index_is_rewritten_never_fails(indexed: App, repo: Path) -> None:
    import threading

    stop = threading.Event()
    errors: list[BaseException] = []

    def rewrite() -> None:
        n = 0
        try:
            while not stop.is_set():
                n += 1
                write(
                    repo,
                    "src/shop/mail.py",
                    f"def send_receipt_email(address):\n"
                    f"    '''Email the receipt, version {n}.'''\n",
                )
                indexed.index(indexed.catalog.source("shop"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        for _ in range(40):
            hits = search(indexed, "email the receipt", k=5)
            assert hits and hits[0].path == "src/shop/mail.py"
    finally:
        stop.set()
        writer.join()
    assert not errors
