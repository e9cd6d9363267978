"""Indexing with the real model and a real Chroma store on disk."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contextd import ops
from contextd.app import App
from contextd.errors import SourceError
from contextd.indexers import CHUNKER_VERSION
from contextd.settings import Settings
from contextd.store import EF_SEARCH, VectorStore
from tests.conftest import SAMPLE_FILES, git, write


def consistent(app: App, source: str) -> tuple[int, int, int]:
    """(lost, orphan, duplicate) chunks between catalog and vector store."""
    r = ops.verify(app)[source]
    return r["lost"], r["orphan"], r["duplicate"]


def add(app: App, root: Path, name: str = "shop"):
    return app.catalog.add_source(name, root, "git")


def test_a_first_index_embeds_everything_and_a_second_nothing(app: App, repo: Path) -> None:
    row = add(app, repo)
    first = app.index(row)
    assert first.files == 4 and first.chunks >= 4
    assert first.embedded == first.chunks and first.cached == 0
    second = app.index(app.catalog.source("shop"))
    assert (second.embedded, second.changed, second.chunks) == (0, 0, first.chunks)
    assert consistent(app, "shop") == (0, 0, 0)


def test_a_restored_files_cached_vectors_are_stored_by_the_first_pass(app: App, repo: Path) -> None:
    """Switching back to a branch brings chunks whose vectors the cache holds: they waited
    in the backlog behind the model's slice in flight (80 s seen), searchable by keyword
    only. The first pass stores them itself; no model is needed."""
    row = add(app, repo)
    app.index(row)
    mail = repo / "src/shop/mail.py"
    text = mail.read_text()
    mail.unlink()
    app.index(app.catalog.source("shop"))
    mail.write_text(text)  # back, as a checkout puts it back
    first_pass = app.index(app.catalog.source("shop"), embed=False)
    assert first_pass.changed == 1 and first_pass.cached >= 1 and first_pass.embedded == 0
    assert app.catalog.pending_count() == 0
    assert consistent(app, "shop") == (0, 0, 0)
    answer = ops.search(app, "email the receipt", k=1)
    assert answer["pending"] == 0 and answer["results"][0]["path"] == "src/shop/mail.py"


def test_the_vector_store_holds_vectors_and_metadata_but_no_chunk_text(
    app: App, repo: Path
) -> None:
    """Search reads text from the catalog; a copy in Chroma would only cost disk and, with
    a Chroma server, send the code over the network."""
    app.index(add(app, repo))
    stored = app.store.collection.get(include=["documents", "metadatas"])
    assert stored["ids"] and all(m["path"] for m in stored["metadatas"])
    assert stored["documents"] == [None] * len(stored["ids"])
    hit = ops.search(app, "email the receipt", k=1)["results"][0]
    assert "def send_receipt_email" in hit["text"]


def test_the_store_searches_wider_than_chromas_default_even_one_made_before(app: App) -> None:
    """Chroma's default ef_search (100) missed 11-13% of the true nearest 50 on the
    standard library; a store an earlier contextd made with it is raised on opening."""
    assert app.store.collection.configuration["hnsw"]["ef_search"] == EF_SEARCH > 100
    app.store.collection.modify(configuration={"hnsw": {"ef_search": 100}})
    assert app.store.collection.configuration["hnsw"]["ef_search"] == 100
    again = VectorStore(app.settings, app.store.model_id, app.store.dim, CHUNKER_VERSION)
    assert again.collection.configuration["hnsw"]["ef_search"] == EF_SEARCH


def test_editing_one_function_re_embeds_only_its_chunk(app: App, repo: Path) -> None:
    body = "\n".join(
        f"def helper_{i}(x):\n    '''Helper {i}.'''\n    return x * {i} + len(str(x))\n"
        for i in range(12)
    )
    write(repo, "src/helpers.py", body)
    app.index(add(app, repo))
    before = {
        c.chunk.symbol: c.chunk.hash
        for c in app.catalog.chunks(app.catalog.chunk_ids("shop"))
        if c.chunk.path == "src/helpers.py"
    }
    assert len(before) > 1, "the file should be several chunks"
    write(repo, "src/helpers.py", body.replace("return x * 7 +", "return x * 70 +"))
    stats = app.index(app.catalog.source("shop"))
    after = {
        c.chunk.symbol: c.chunk.hash
        for c in app.catalog.chunks(app.catalog.chunk_ids("shop"))
        if c.chunk.path == "src/helpers.py"
    }
    changed = [s for s in after if before.get(s) != after[s]]
    assert stats.changed == 1
    assert stats.embedded == len(changed) == 1 and "helper_7" in changed[0]
    assert consistent(app, "shop") == (0, 0, 0)


def test_deleting_and_renaming_files_removes_their_chunks(app: App, repo: Path) -> None:
    app.index(add(app, repo))
    git(repo, "mv", "src/shop/mail.py", "src/shop/email.py")
    (repo / "web/app.js").unlink()
    stats = app.index(app.catalog.source("shop"))
    paths = {c.chunk.path for c in app.catalog.chunks(app.catalog.chunk_ids("shop"))}
    assert "src/shop/email.py" in paths
    assert not {"src/shop/mail.py", "web/app.js"} & paths
    assert stats.embedded == 0, "a renamed file's text is already in the embedding cache"
    assert stats.deleted == 2
    assert consistent(app, "shop") == (0, 0, 0)


def test_an_interrupted_run_converges_on_the_next(
    app: App, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.index(add(app, repo))
    write(repo, "src/shop/cart.py", "def checkout():\n    return 'paid'\n")
    write(repo, "src/new.py", "def fresh():\n    return 1\n")

    def crash(self: VectorStore, ids: object) -> None:
        raise KeyboardInterrupt  # stop after the catalog commit, before stale ids go

    monkeypatch.setattr(VectorStore, "delete", crash)
    with pytest.raises(KeyboardInterrupt):
        app.index(app.catalog.source("shop"))
    monkeypatch.undo()
    assert app.catalog.source("shop").dirty
    assert consistent(app, "shop")[1] > 0, "the crash should have left orphans"
    app.index(app.catalog.source("shop"))
    assert consistent(app, "shop") == (0, 0, 0)
    assert not app.catalog.source("shop").dirty


def _forty_notes_in_small_batches(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_size: int
) -> Any:
    """40 pending notes, embedded in slices of `slice_size` and model batches of 2."""
    import contextd.pipeline

    root = tmp_path / "notes"
    for i in range(40):
        write(root, f"note{i:02}.txt", f"note {i} about the ledger and its {i} entries\n")
    app.indexer.index(app.catalog.add_source("notes", root, "folder"))
    monkeypatch.setattr(contextd.pipeline, "EMBED_SLICE", slice_size)
    embedder = app.embedder
    embedder.load()  # its bf16 check runs batches of its own
    update = {"batch_size": 2}
    monkeypatch.setattr(embedder, "settings", embedder.settings.model_copy(update=update))
    return embedder


def test_ctrl_c_while_a_slice_is_embedded_stops_the_model_at_its_next_batch(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slice in flight is not finished and thrown away (up to 512 chunks, seconds of
    model time): the model stops between batches, and the next run embeds everything."""
    import threading

    embedder = _forty_notes_in_small_batches(app, tmp_path, monkeypatch, slice_size=8)
    started = threading.Event()
    batches: list[bool] = []  # per model batch: was Ctrl-C already pressed?
    pressed = threading.Event()
    forward = embedder._forward

    def counted(model: object, features: object) -> object:
        batches.append(pressed.is_set())
        started.set()
        return forward(model, features)

    def land(*args: object) -> None:  # the first slice lands while the second is embedded
        assert started.wait(10)
        pressed.set()
        raise KeyboardInterrupt

    monkeypatch.setattr(embedder, "_forward", counted)
    monkeypatch.setattr(app.indexer, "_land", land)
    with pytest.raises(KeyboardInterrupt):
        app.indexer.embed_pending()
    assert batches.count(True) <= 1, batches  # at most one begun as the key was pressed
    assert len(batches) < 4 + 4, batches  # two slices of four batches were never all run
    monkeypatch.undo()
    assert app.indexer.embed_pending().pending == 0
    assert consistent(app, "notes") == (0, 0, 0)


def test_a_stopping_daemon_ends_the_slice_in_flight_at_its_next_batch(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`contextd stop` waited for the whole slice (44 s at 1,536 chunks under load on a
    large tree, and once past stop's 30 s): the model now stops between batches, quietly,
    and what it did not finish is embedded next time."""
    import threading

    embedder = _forty_notes_in_small_batches(app, tmp_path, monkeypatch, slice_size=16)
    stopping = threading.Event()
    batches: list[bool] = []  # per model batch: had the stop come?
    forward = embedder._forward

    def counted(model: object, features: object) -> object:
        batches.append(stopping.is_set())
        if len(batches) == 3:
            stopping.set()  # `contextd stop`, three batches into the first slice
        return forward(model, features)

    monkeypatch.setattr(embedder, "_forward", counted)
    stats = app.indexer.embed_pending(pause=stopping.is_set, stopping=stopping)
    assert batches.count(True) == 0, batches  # none begun after the stop
    assert len(batches) == 3 and stats.pending == 40  # the slice was dropped, not stored
    monkeypatch.undo()
    assert app.indexer.embed_pending().pending == 0
    assert consistent(app, "notes") == (0, 0, 0)


def test_the_embedding_cache_stays_bounded_and_keeps_what_was_used_last(
    app: App, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text edited away stays cached (switching back costs no model time), up to as many
    vectors as the index uses; past that the longest unused go first."""
    import contextd.catalog
    import contextd.pipeline

    monkeypatch.setattr(contextd.catalog, "CACHE_SPARE_MIN", 0)
    monkeypatch.setattr(contextd.pipeline, "CACHE_TRIM_EVERY_S", 0.0)
    source = add(app, repo)
    app.index(source)
    versions = [f"def scratch():\n    return 'version {i} of the scratch pad'\n" for i in range(40)]
    for i, text in enumerate(versions):
        if i == 36:  # an older version comes back once: a reuse counts as a use
            write(repo, "src/scratch.py", versions[30])
            assert app.index(app.catalog.source("shop")).embedded == 0
        write(repo, "src/scratch.py", text)
        assert app.index(app.catalog.source("shop")).embedded == 1
    chunks = app.catalog.chunk_count()
    assert 5 <= chunks <= 8, "the cache keeps as many unused vectors as there are chunks"
    assert app.catalog.unused_vectors() == chunks

    # Edited back: from the cache (the last but one, and the one reused late), or not
    # (31 was written after 30 but not used since: four trims later it went first).
    for back, embedded in ((-2, 0), (30, 0), (31, 1)):
        write(repo, "src/scratch.py", versions[back])
        assert app.index(app.catalog.source("shop")).embedded == embedded, back

    # Another model's vectors are no use to this model's index: they count as unused.
    app.catalog.put_vectors("another-model", [(f"h{i}", np.zeros(4)) for i in range(3)])
    assert app.catalog.trim_cache(app.embedder.model_id) == 3


def test_an_embedding_cache_written_before_it_was_trimmed_is_kept(tmp_path: Path) -> None:
    from contextd.catalog import Catalog

    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()
    old = sqlite3.connect(path)  # the cache as an earlier contextd wrote it
    old.executescript(
        "DROP TABLE vectors; CREATE TABLE vectors (model TEXT NOT NULL, hash TEXT NOT NULL, "
        "vector BLOB NOT NULL, PRIMARY KEY (model, hash)) WITHOUT ROWID;"
    )
    old.execute("INSERT INTO vectors VALUES ('m', 'h', ?)", (np.ones(4, np.float32).tobytes(),))
    old.commit()
    old.close()
    catalog = Catalog(path)
    assert catalog.cached_vectors("m", ["h"], reuse=True)["h"].tolist() == [1.0] * 4
    catalog.put_vectors("m", [("h2", np.zeros(4))])
    assert catalog.unused_vectors() == 2 and catalog.trim_cache("m") == 0  # under the floor
    catalog.close()


def test_a_cache_table_made_without_rowid_is_rewritten_smaller_with_every_vector(
    tmp_path: Path, monkeypatch
) -> None:
    from contextd import catalog as catalog_module
    from contextd.catalog import Catalog

    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()
    old = sqlite3.connect(path)  # the layout before: each vector spilled to a page of its own
    old.executescript(
        "DROP TABLE vectors; CREATE TABLE vectors (model TEXT NOT NULL, hash TEXT NOT NULL, "
        "vector BLOB NOT NULL, used REAL NOT NULL DEFAULT 0, PRIMARY KEY (model, hash)) "
        "WITHOUT ROWID;"
    )
    rng = np.random.default_rng(7)
    vectors = {f"h{i}": rng.standard_normal(384).astype(np.float32) for i in range(2000)}
    old.executemany(
        "INSERT INTO vectors VALUES ('m', ?, ?, ?)",
        [(h, v.tobytes(), i) for i, (h, v) in enumerate(vectors.items())],
    )
    old.commit()
    old.close()
    before = path.stat().st_size
    monkeypatch.setattr(catalog_module, "COMPACT_MIN_BYTES", 0)

    catalog = Catalog(path)
    layout = catalog.db.execute("SELECT sql FROM sqlite_master WHERE name = 'vectors'")
    assert "WITHOUT ROWID" not in layout.fetchone()[0].upper()
    found = catalog.cached_vectors("m", vectors)
    assert len(found) == 2000 and all(np.array_equal(found[h], v) for h, v in vectors.items())
    assert catalog.trim_cache("m") == 0  # `used` came along: nothing is over the floor
    catalog.put_vectors("m", [("h0", np.zeros(384))])  # still one row per (model, hash)
    assert catalog.unused_vectors() == 2000 and not catalog.cached_vectors("m", ["h0"])["h0"].any()
    catalog.close()
    assert path.stat().st_size < before / 2, (before, path.stat().st_size)
    Catalog(path).close()  # opened again: nothing left to rewrite


def test_lost_vectors_are_restored_from_the_cache(app: App, repo: Path) -> None:
    app.index(add(app, repo))
    ids = sorted(app.catalog.chunk_ids("shop"))
    app.store.delete(ids[:2])
    app.catalog.mark_source("shop", dirty=True)
    stats = app.index(app.catalog.source("shop"))
    assert consistent(app, "shop") == (0, 0, 0)
    assert stats.embedded == 0


def test_skipped_files_are_recorded_with_reasons(app: App, repo: Path) -> None:
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    write(repo, ".env", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    stats = app.index(add(app, repo))
    skipped = {p: r for _, p, r in app.catalog.skipped("shop")}
    assert stats.skipped == 2
    assert skipped["logo.png"].startswith("binary") and skipped[".env"].startswith("secret")


def test_a_catalog_from_an_earlier_version_is_migrated_in_place(tmp_path: Path) -> None:
    import sqlite3

    from contextd.catalog import Catalog

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE sources (name TEXT PRIMARY KEY, root TEXT NOT NULL UNIQUE,
           kind TEXT NOT NULL, added_at REAL NOT NULL, indexed_at REAL, indexed_commit TEXT,
           dirty INTEGER NOT NULL DEFAULT 0);
           CREATE TABLE files (source TEXT, path TEXT, size INTEGER, mtime_ns INTEGER,
           hash TEXT, status TEXT, reason TEXT, language TEXT, indexed_at REAL,
           PRIMARY KEY (source, path));
           CREATE TABLE chunks (id TEXT PRIMARY KEY, source TEXT, path TEXT, start_line INT,
           end_line INT, symbol TEXT, language TEXT, hash TEXT, text TEXT);
           INSERT INTO sources VALUES ('s', '/x', 'folder', 0, 1, NULL, 0);
           INSERT INTO chunks VALUES ('c1', 's', 'a.py', 1, 2, 'resolve_redirects', 'python',
                                      'h', 'def resolve_redirects(): pass');"""
    )
    old.commit()
    old.close()
    catalog = Catalog(path)
    assert catalog.source("s").reconciled_at is None
    assert catalog.lexical(["redirects"], 5)[0][0] == "c1"
    catalog.close()


def test_chunks_are_searchable_by_keyword_before_they_are_embedded(
    app: App, repo: Path, isolated_home: Path
) -> None:
    stats = app.indexer.index(add(app, repo))  # pass 1 only, as the daemon's worker runs it
    assert stats.pending == stats.chunks > 0
    assert app.store.ids("shop") == set(), "nothing reaches the vector store in pass 1"
    report = ops.verify(app)["shop"]
    assert (report["pending"], report["lost"], report["orphan"]) == (stats.chunks, 0, 0)
    answer = ops.search(app, "send_receipt_email")
    assert answer["pending"] == stats.chunks
    assert answer["results"][0]["path"] == "src/shop/mail.py"
    app.close()

    restarted = App(Settings())  # the backlog survives a restart: it is in the catalog
    try:
        done = restarted.indexer.embed_pending()
        assert done.embedded == stats.chunks and done.pending == 0
        assert restarted.store.ids("shop") == restarted.catalog.chunk_ids("shop")
        assert consistent(restarted, "shop") == (0, 0, 0)
        assert ops.search(restarted, "send_receipt_email")["pending"] == 0
    finally:
        restarted.close()


def test_the_backlog_embeds_files_changed_just_now_first(app: App, repo: Path) -> None:
    old = time.time() - 3600
    for rel in SAMPLE_FILES:
        os.utime(repo / rel, (old, old))
    write(repo, "docs/guide.md", SAMPLE_FILES["docs/guide.md"] + "\nAsk at the counter.\n")
    app.indexer.index(add(app, repo))
    first = app.catalog.pending_chunks(1, time.time_ns() - 600 * 10**9)
    assert [c.chunk.path for c in first] == ["docs/guide.md"]


def test_the_backlog_is_sliced_by_length_and_every_chunk_comes_in_turn(
    app: App, tmp_path: Path
) -> None:
    """Slices of similar length carry less padding; the first in line is always in the
    slice, so nothing waits for ever, and a recent edit is not mixed with older work."""
    root = tmp_path / "notes"
    root.mkdir()
    for i in range(40):  # one chunk per file, lengths in no order
        words = " ".join(f"word{i}x{j}" for j in range(5 + (i * 37) % 150))
        (root / f"note{i:02}.txt").write_text(words + "\n")
    old = time.time() - 3600
    for f in root.iterdir():
        os.utime(f, (old, old))
    app.indexer.index(app.catalog.add_source("notes", root, "folder"))
    recent_ns = time.time_ns() - 600 * 10**9
    slices: list[list[str]] = []
    while rows := app.catalog.pending_chunks(8, recent_ns, skip={i for s in slices for i in s}):
        done = {i for s in slices for i in s}
        first_in_line = app.catalog.pending_chunks(1, recent_ns, skip=done)[0]
        assert first_in_line.id in {r.id for r in rows}
        assert 4 <= len(rows) <= 12
        slices.append([r.id for r in rows])
    seen = [i for s in slices for i in s]
    assert sorted(seen) == sorted(app.catalog.chunk_ids("notes"))

    size = {r.id: len(r.chunk.embed_text) for r in app.catalog.chunks(seen)}

    def padding(slices: list[list[str]]) -> int:
        """Characters padded when each slice is sorted by length and cut in batches of 4,
        as the embedder does."""
        waste = 0
        for s in slices:
            lengths = sorted((size[i] for i in s), reverse=True)
            for b in range(0, len(lengths), 4):
                waste += sum(lengths[b] - n for n in lengths[b : b + 4])
        return waste

    in_line = [r[0] for r in app.catalog.db.execute("SELECT id FROM chunks ORDER BY rowid")]
    assert padding(slices) < padding([in_line[s : s + 8] for s in range(0, len(in_line), 8)]) / 2

    (root / "note07.txt").write_text("an edit made just now\n")
    app.indexer.index(app.catalog.source("notes"))
    rows = app.catalog.pending_chunks(8, recent_ns)
    assert [r.chunk.path for r in rows] == ["note07.txt"]


def test_base64_blobs_are_a_marker_not_chunks_of_noise(app: App, tmp_path: Path) -> None:
    """A notebook's plot (base64 PNG in its JSON) was 43 chunks of noise that reached the
    top of unrelated searches; a data: URI in a page likewise."""
    import base64
    import json
    import random

    png = base64.b64encode(random.Random(0).randbytes(30_000)).decode()
    table = "<table>" + "<tr><td>41</td></tr>" * 2_000 + "</table>"  # a 38,000-character line
    cells = [
        {"cell_type": "code", "source": ["churn = orders.groupby('month').size()\n"],
         "outputs": [{"data": {"image/png": png, "text/plain": ["<Figure>"]}}]},
        {"cell_type": "code", "source": ["orders.head(2000)"],
         "outputs": [{"data": {"text/html": [table]}}]},
    ]  # fmt: skip
    write(tmp_path / "nb", "churn.ipynb", json.dumps({"cells": cells}, indent=1))
    write(tmp_path / "nb", "page.html", f'<img src="data:image/png;base64,{png}">\n<p>Hi</p>\n')
    app.index(app.catalog.add_source("nb", tmp_path / "nb", "folder"))
    chunks = app.catalog.chunks(app.catalog.chunk_ids("nb"))
    assert len(chunks) <= 4, len(chunks)
    assert not any(png[:64] in c.chunk.text for c in chunks)
    assert any("[base64 data: 40,000 characters]" in c.chunk.text for c in chunks)
    # The notebook is read by its cells: the chunk is the cell's code, not its JSON, and
    # an output's long line (never read) is no reason to skip it as minified.
    (cell,) = [c.chunk.text.split("\n") for c in chunks if c.chunk.path == "churn.ipynb"]
    code = ["churn = orders.groupby('month').size()", "orders.head(2000)"]
    assert [line for line in cell if line] == code


def test_a_notebooks_secrets_outputs_and_nested_sources_never_reach_a_chunk(
    app: App, tmp_path: Path
) -> None:
    """The diff review: a cell's `API_KEY = "..."` sits in the JSON as `\\"...\\"`, which
    redaction did not read, and the cell chunker then stored it as clean text; a redacted
    flag took the backslash of `\\"` and broke the JSON, so outputs were chunked; and an
    output's nested `"source"` key was taken for a cell's source."""
    import json

    key, pw, call = "Zq8vK2mP9xL4tR7wA1", "Hq7vLm2Xk9PwR4tZ", "Wd3kP8sLq2Xv9RmT"
    cells = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": [
            f'API_KEY = "{key}"\n', f'cmd = "mysql --password={pw}"\n',
            f'define("DB_PASSWORD", "{call}")']},
        {"cell_type": "code", "metadata": {"source": "a tool's note"}, "outputs": [
            {"output_type": "display_data", "data": {"application/json": {
                "source": ["OUTPUT_ONLY_TEXT"]}}}],
         "source": ["plot_churn(df)"]},
    ]  # fmt: skip
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    write(tmp_path / "nb", "keys.ipynb", json.dumps(nb, indent=1, sort_keys=True))
    app.index(app.catalog.add_source("nb", tmp_path / "nb", "folder"))
    texts = [c.chunk.text for c in app.catalog.chunks(app.catalog.chunk_ids("nb"))]
    joined = "\n".join(texts)
    assert key not in joined and pw not in joined and call not in joined
    assert "OUTPUT_ONLY_TEXT" not in joined and "tool's note" not in joined
    assert "plot_churn(df)" in joined and '"source"' not in joined  # read by its cells
    assert "API_KEY = " in joined and "cmd = " in joined


def test_a_chunk_rewritten_while_it_waits_is_stored_as_it_is_now(app: App, repo: Path) -> None:
    app.indexer.index(add(app, repo))
    write(
        repo, "src/shop/mail.py", SAMPLE_FILES["src/shop/mail.py"] + "\n\ndef late():\n    pass\n"
    )
    app.indexer.index(app.catalog.source("shop"))
    app.indexer.embed_pending()
    assert consistent(app, "shop") == (0, 0, 0)
    assert app.store.ids("shop") == app.catalog.chunk_ids("shop")


def test_a_threads_catalog_connection_closes_when_the_thread_ends(tmp_path: Path) -> None:
    import gc
    import threading

    from contextd.catalog import Catalog

    catalog = Catalog(tmp_path / "catalog.sqlite3")
    catalog.chunk_count()
    for _ in range(30):
        t = threading.Thread(target=catalog.chunk_count)
        t.start()
        t.join()
        del t
    gc.collect()
    assert len(catalog._all) == 1  # only this thread's
    catalog.close()


def test_a_source_with_more_vectors_than_sqlite_has_variables_can_be_listed(app: App) -> None:
    """`doctor` and the sweep list a source's vectors; Chroma reads their metadata with one
    SQL variable each, and SQLite allows 32,766 in one statement."""
    n = 33_000
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(n)]
    meta = {"source": "big", "path": "p.py", "start_line": 1, "end_line": 1, "hash": "h"}
    app.store.upsert(ids, rng.standard_normal((n, app.store.dim)).astype(np.float32), [meta] * n)
    entries = app.store.entries("big")
    assert len(entries) == n and {i for i, _ in entries} == set(ids) == app.store.ids("big")
    assert all(m["path"] == "p.py" for _, m in entries)


def test_a_source_can_be_removed_while_the_store_needs_a_reindex(app: App, repo: Path) -> None:
    """`reindex` refuses while a source's folder is gone and says to remove it; `remove`
    must not then refuse because the store needs that reindex (another model): the two
    sent the user back and forth."""
    from contextd.app import MODEL_KEY

    app.index(add(app, repo))
    app.catalog.set_meta(MODEL_KEY, "some-other-model")
    fresh = App(app.settings)
    try:
        assert ops.remove(fresh, "shop")["chunks"] > 0
        assert fresh.catalog.sources() == []
    finally:
        fresh.close()


def test_the_backlog_rate_is_measured_over_recent_wall_time(app: App) -> None:
    """The ETA came from each drain's own rate, model time only: 19-27% too optimistic on
    a large tree, where the backlog steps aside for the worker and slows as it goes."""
    from contextd.backlog import Backlog

    backlog = Backlog(app, busy=lambda: False)
    backlog.observe(0.0, 0, 0.0)
    backlog.observe(30.0, 2_400, 80.0)  # under a minute known: the drain's own rate
    assert backlog.state.rate == 80.0
    backlog.observe(120.0, 6_000, 75.0)  # 6,000 in 120 s of wall time, pauses and all
    assert backlog.state.rate == 50.0 and backlog.eta_s(1_000) == 20.0
    for t in range(180, 1_500, 60):  # later: 40 a second, and the window forgets the start
        backlog.observe(float(t), 6_000 + 40 * (t - 120), 75.0)
    assert backlog.state.rate == pytest.approx(40.0)


def test_removing_a_source_gives_its_space_back_and_keeps_the_rest(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog's free pages go back to the disk after a removal (here any amount; 64 MB
    and a quarter of the file by default); the embedding cache keeps the source's vectors,
    so adding the same files again from another path embeds nothing."""
    import contextd.catalog

    monkeypatch.setattr(contextd.catalog, "COMPACT_MIN_BYTES", 0)
    monkeypatch.setattr(contextd.catalog, "CACHE_SPARE_MIN", 10)  # a trim would show
    big, small = tmp_path / "big", tmp_path / "small"
    for i in range(120):
        body = "\n".join(f"    total_{j} = price_{i} * {j}  # line {j} of {i}" for j in range(60))
        write(big, f"m{i}.py", f"def rule_{i}(price_{i}):\n{body}\n    return total_0\n")
    write(small, "notes.md", "# Shipping\n\nParcels ship on Mondays from the north depot.\n")
    app.index(app.catalog.add_source("big", big, "folder"))
    app.index(app.catalog.add_source("small", small, "folder"))
    path = app.settings.catalog_path
    app.catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.stat().st_size

    result = ops.remove(app, "big")

    assert result["chunks"] > 200 and result["freed"] > 0
    assert path.stat().st_size < before
    moved = tmp_path / "moved"
    shutil.copytree(big, moved)
    stats = app.index(app.catalog.add_source("big", moved, "folder"))
    assert stats.embedded == 0 and stats.cached == result["chunks"]
    ops.remove(app, "big")
    hit = ops.search(app, "when do parcels ship", k=1)["results"][0]
    assert hit["path"] == "notes.md"
    assert consistent(app, "small") == (0, 0, 0)
    store_before = sum(f.stat().st_size for f in app.settings.chroma_path.rglob("*.bin"))
    ops.remove(app, "small")  # the last: the store's index starts again, empty
    store_after = sum(f.stat().st_size for f in app.settings.chroma_path.rglob("*.bin"))
    assert store_after < store_before // 2 and app.store.count() == 0


def test_a_reindex_leaves_no_segment_folders_of_deleted_collections(app: App, repo: Path) -> None:
    """Chroma 1.x deletes a collection's rows but not its HNSW folder: each reindex left
    the old index on disk. Folders Chroma's table no longer lists go; the index works."""
    import uuid

    app.index(add(app, repo))
    chroma = app.settings.chroma_path

    def folders() -> set[str]:
        out = set()
        for f in chroma.iterdir():
            try:
                if f.is_dir() and str(uuid.UUID(f.name)) == f.name:
                    out.add(f.name)
            except ValueError:
                pass
        return out

    first = folders()
    assert first  # the index's own segment
    for _ in range(2):
        ops.reindex(app)
    db = sqlite3.connect(chroma / "chroma.sqlite3")
    listed = {row[0] for row in db.execute("SELECT id FROM segments")}
    db.close()
    assert folders() <= listed and not folders() & first
    assert ops.search(app, "send_receipt_email", k=1)["results"][0]["path"].endswith(".py")
    assert consistent(app, "shop") == (0, 0, 0)


def test_a_large_run_leaves_the_keyword_index_merged(app: App, tmp_path: Path) -> None:
    """Replaced text stays in the FTS index's segments until they are merged; a run that
    changes many files merges them, so nothing is left for a merge to drop."""
    from contextd.pipeline import OPTIMIZE_MIN_FILES

    root = tmp_path / "notes"

    def write_all(version: int) -> None:
        for i in range(OPTIMIZE_MIN_FILES + 20):
            write(root, f"n{i}.txt", f"note {i} version {version}: ledger entry {i * version}\n")

    def fts_bytes() -> int:
        query = "SELECT SUM(LENGTH(block)) FROM chunks_fts_data"
        return int(app.catalog.db.execute(query).fetchone()[0])

    write_all(1)
    row = app.catalog.add_source("notes", root, "folder")
    app.index(row, embed=False)
    write_all(2)
    app.index(app.catalog.source("notes"), embed=False)
    merged = fts_bytes()
    app.catalog.optimize_lexical()
    assert fts_bytes() == merged
    assert len(app.catalog.lexical(["version"], 1000)) == OPTIMIZE_MIN_FILES + 20


def test_a_data_dir_inside_a_source_is_never_indexed_read_or_added(
    app: App, isolated_home: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`contextd add ~` holds the data dir, whose tokens open the daemon: they were
    indexed, searchable and readable. A second data dir inside a repository, untracked,
    and one from before the mark (a catalog beside a store) are left out as well."""
    from contextd.reading import ReadRefused

    token = "sT8Pr5JGYQJH69wLk2Zq"
    (isolated_home / "store-token").write_text(token + "\n")
    write(tmp_path, "notes/plan.md", "# Plan\n\nShip the shop.\n")
    repo = tmp_path_factory.mktemp("shop")
    git(repo, "init", "-q", "-b", "main")
    write(repo, "shop/cart.py", "def total(items):\n    return sum(items)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    old = repo / "var/ctx"  # an earlier contextd's data dir: no mark
    write(old, "catalog.sqlite3", "not text the index may take\n")
    write(old, "chroma/segment.txt", f"{token}\n")
    write(old, "http-token", f"{token}\n")

    added = ops.add(app, str(tmp_path), name="everything")  # holds the data dir
    assert (isolated_home / ".contextd-data-dir").is_file()
    ops.add(app, str(repo), name="shop", install_hooks=False)
    ops.index(app)
    for source in ("everything", "shop"):
        paths = app.catalog.indexed_paths(source)
        assert paths and not any("contextd-home/" in p or "var/ctx" in p for p in paths), paths
    assert "notes/plan.md" in app.catalog.indexed_paths(added["name"])
    skipped = [s["path"] for s in ops.status(app, skipped=True)["skipped"]]
    assert not any("contextd-home" in p or "var/ctx" in p for p in skipped), skipped
    found = ops.search(app, token, k=10)["results"]
    assert not any(token in r["text"] for r in found), found
    for source, path in (
        ("everything", "contextd-home/store-token"),
        ("shop", "var/ctx/http-token"),
    ):
        with pytest.raises(ReadRefused, match="data dir"):
            ops.read(app, source, path)
    for inside in (isolated_home, isolated_home / "chroma", old):
        with pytest.raises(SourceError, match="data dir"):
            ops.add(app, str(inside), name="home")
