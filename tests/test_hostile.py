"""A hostile corpus through the real daemon: nothing crashes, every file is accounted for.

The corpus (bench/hostile_corpus.py, test-sized) has every kind of bad input: invalid
UTF-8, UTF-16/32, NUL bytes, a line over the size cap, minified one-liners, 100,000-deep
nesting, FIFOs, a socket, unreadable files and folders, non-UTF-8 and hostile names,
symlink loops, a sparse file, empty files and injected instructions; files appear and
vanish while the daemon lists and reads them. As root, the daemon runs without
CAP_DAC_OVERRIDE (setpriv) so that chmod 000 denies it as it would deny a user.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench._common import wait_idle
from bench.hostile_corpus import (
    DROP_DAC,
    SMALL,
    Account,
    Churn,
    Corpus,
    account,
    can_drop_dac,
    catalog_rows,
    chmod_is_ignored,
    generate,
    unlock,
)
from contextd import rpc
from contextd.connectors.changes import classify
from contextd.embedder import default_model_dir
from contextd.indexers import ChunkerRegistry
from contextd.indexers.tokens import TokenCounter
from contextd.records import Change
from tests.daemon_helpers import CONTEXTD


@dataclass
class Run:
    corpus: Corpus
    env: dict[str, str]
    home: Path
    churn: Churn
    index: subprocess.CompletedProcess
    result: Account


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("hostile")
    drop = can_drop_dac()
    corpus = generate(base / "corpus", SMALL, locked_readable=not drop and chmod_is_ignored(base))
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTD_")}
    env |= {"CONTEXTD_HOME": str(home), "HF_HUB_OFFLINE": "1",
            "CONTEXTD_RECONCILE_INTERVAL_S": "3600"}  # fmt: skip
    prefix = DROP_DAC if drop else []

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *CONTEXTD, *args], env=env, capture_output=True,
                              text=True, timeout=900)  # fmt: skip

    assert cli("start").returncode == 0
    churn = Churn(corpus.root, files=20)
    try:
        churn.start()
        assert cli("add", str(corpus.root), "--name", "hostile").returncode == 0
        time.sleep(2)  # files keep appearing and vanishing while the first scan runs
        churn.stop()
        wait_idle(home, timeout=900)
        index = cli("index", "--json")  # answered by the daemon: a full reconcile
        yield Run(corpus, env, home, churn, index, account(corpus, catalog_rows(home, "hostile")))
    finally:
        churn.stop()
        cli("stop")
        unlock(corpus.root)


def test_the_daemon_survives_with_no_errors(hostile: Run) -> None:
    assert hostile.index.returncode == 0, hostile.index.stderr
    assert rpc.ping(hostile.home, timeout=5), "the daemon stopped answering"
    status = rpc.call(hostile.home, "status", {}, timeout=60)
    assert [r.get("errors") for r in status["sources"]] == [[]]
    log = (hostile.home / "logs/contextd.log").read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log


def test_every_file_is_indexed_or_skipped_with_a_reason(hostile: Run) -> None:
    result = hostile.result
    assert result.files >= 200 and result.indexed and result.skipped
    assert result.unaccounted == [], "on disk, not in the catalog"
    assert result.ghosts == [], "in the catalog, gone from disk (vanished files included)"
    assert result.no_reason == []
    assert hostile.churn.cycles > 0


def test_each_kind_of_file_ends_as_expected(hostile: Run) -> None:
    assert hostile.result.wrong == []
    rows = catalog_rows(hostile.home, "hostile")
    kinds = hostile.corpus.kinds
    for kind in ("utf16_le_bom", "utf16_be_bom", "utf16_le", "utf16_be", "utf16_utf32_bom"):
        assert {rows[p][0] for p in kinds[kind]} == {"indexed"}, kind
    assert all("binary" in str(rows[p][1]) for p in kinds["nul_early"])
    assert all(rows[p][1] == "not a regular file" for p in kinds["fifo"])
    assert all(str(rows[p][1]).startswith("symlink") for p in kinds["symlink"])
    assert all(str(rows[p][1]).startswith("too large") for p in kinds["huge"])
    assert {rows[p][0] for p in kinds["nesting"] if "one_line" not in p} == {"indexed"}
    assert {rows[p][1] for p in kinds["name_not_utf8"]} == {"file name is not valid UTF-8"}
    if not chmod_is_ignored(hostile.home):  # the daemon could not read chmod-000 files
        assert all(str(rows[p][1]).startswith("unreadable:") for p in kinds["unreadable"])
        assert str(rows["locked/dir"][1]).startswith("unreadable folder:")


def test_status_lists_skipped_files_with_inert_names(hostile: Run) -> None:
    out = subprocess.run([*CONTEXTD, "status", "--skipped"], env=hostile.env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "hostile:names/[/].png" in out.stdout  # a name that is rich markup, shown as is
    assert "\x1b" not in out.stdout and "caf\\xe9_0.py" in out.stdout


def test_no_deeply_nested_file_takes_five_seconds_to_chunk(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "c", SMALL)
    try:
        chunkers = ChunkerRegistry(TokenCounter.from_model_dir(default_model_dir()))
        for rel in corpus.kinds["nesting"] + corpus.kinds["many_lines"]:
            started = time.process_time()  # CPU time: a busy machine does not fail it
            event = classify("t", corpus.root, rel, None, 1024 * 1024)
            if isinstance(event, Change):
                assert chunkers.chunk(rel, event.text) is not None
            assert time.process_time() - started < 5, rel
    finally:
        unlock(corpus.root)
