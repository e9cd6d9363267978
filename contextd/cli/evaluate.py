"""`contextd eval` and `contextd calibrate`: measured on a repository's own history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from contextd.cli.common import console, err_console, print_json, settings
from contextd.errors import ContextdError

KEYS = (
    ("n", "queries"),
    ("recall@1", "Recall@1"),
    ("recall@5", "Recall@5"),
    ("recall@10", "Recall@10"),
    ("mrr", "MRR"),
    ("ndcg@10", "nDCG@10"),
    ("auroc", "AUROC answerable vs gold removed"),
    ("ece", "ECE (10 equal-mass bins)"),
    ("recall@5_at_80_coverage", "Recall@5 at 80% coverage"),
    ("confidence_auroc", "AUROC of results' confidence"),
    ("confidence_ece", "ECE of results' confidence"),
)


def _progress(quiet: bool) -> Any:
    if quiet:
        return None

    def show(i: int, n: int, text: str) -> None:
        err_console.print(f"[dim]{i}/{n}[/] {text}", markup=True, highlight=False)

    return show


def _queries(repo: Path, queries: Path | None, limit: int) -> list[dict]:
    from contextd.evaluation import check_parents, git_dir_of, history_queries, load_queries

    if queries is not None:
        rows = load_queries(queries)
        if not rows:
            raise ContextdError(f"{queries} holds no queries (it is empty).")
        check_parents(git_dir_of(repo), rows, queries)  # before minutes of work, not after
        rows = sorted(rows, key=_when)
        return rows[-limit:] if limit else rows
    rows = history_queries(git_dir_of(repo), limit=limit or 100)
    if not rows:
        raise ContextdError(
            f"No usable commits in {repo}'s history (after leaving out merges, bots, version "
            "bumps, tests-only and docs-only commits). Pass --queries FILE.jsonl instead."
        )
    return rows


SMALL_N = 20


def _when(row: dict) -> float:
    """A query's commit time (dates carry their author's UTC offset); undated ones first."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(row.get("date") or "")).timestamp()
    except ValueError:
        return float("-inf")


def _check_plot(folder: Path) -> None:
    """--plot's folder and what it draws, checked before the run rather than after it."""
    from contextd.confidence import shipped
    from contextd.embedder import SentenceTransformerEmbedder

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ContextdError(
            "--plot needs matplotlib: pip install 'contextd[plot]' (or pip install matplotlib)."
        ) from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ContextdError(
            f"--plot {folder}: cannot make that folder ({exc.strerror}). Give a folder path."
        ) from None
    model_id = SentenceTransformerEmbedder(settings()).model_id
    if shipped(model_id) is None:
        raise ContextdError(
            f"--plot draws confidence, and contextd ships no calibration for {model_id}; "
            "run without --plot, or with the default model."
        )


def eval_cmd(
    repo: Annotated[Path, typer.Argument(help="A git repository (a bare one will do).")],
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help='JSONL, a query a line: {"parent": COMMIT, "query": TEXT, "gold_files": '
            "[PATHS]} (asked at the parent commit; its answer is in those files).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="At most this many (newest) queries; 0: all.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write reliability and risk-coverage PNGs here.")
    ] = None,
    long: Annotated[bool, typer.Option("--long", help="Ask query_long (subject + body).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Measure retrieval and confidence on queries from a repository's history.

    Each query is asked of the tree at its parent commit, read from git objects into a
    scratch index (nobody's working tree is touched), and again with its gold files
    removed from the index.
    """
    from contextd.evaluation import evaluate, report

    if plot is not None:
        _check_plot(plot)
    rows = _queries(repo, queries, limit)
    if not quiet:
        err_console.print(f"{len(rows)} queries; the first tree is indexed from scratch.")
    result = evaluate(repo, rows, settings(), progress=_progress(quiet), long=long)
    figures = report(result.records)
    figures["seconds"] = round(result.seconds, 1)
    figures["too_few"] = figures["n"] < SMALL_N  # figures this few vary a lot
    figures["plots"] = []
    if plot is not None:
        from contextd import plots

        figures["plots"] = [str(p) for p in plots.write(result.records, plot, repo.name)]
    if as_json:
        print_json(figures)
        return
    table = Table(title=f"contextd eval {repo}", show_header=False)
    for key, label in KEYS:
        value = figures.get(key)
        table.add_row(label, "—" if value is None else str(value))
    console.print(table)
    if not figures["calibrated"]:
        console.print(
            "No confidence figures: contextd ships no calibration for this embedding model "
            "(`contextd calibrate SOURCE` fits one for searches of a source, not for eval)."
        )
    if figures["too_few"]:
        console.print(
            f"Only {figures['n']} queries: figures this few vary a lot (ECE and AUROC above "
            "all); use a longer history or --queries for a verdict."
        )
    for path in figures.get("plots", []):
        console.print(f"wrote {path}")


def calibrate(
    source: Annotated[str, typer.Argument(help="A source added with `contextd add` (git).")],
    limit: Annotated[
        int, typer.Option("--limit", min=20, help="Newest commits to learn from.")
    ] = 100,
    reset: Annotated[
        bool, typer.Option("--reset", help="Drop this source's fit: back to the shipped one.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Fit this source's confidence from its own git history.

    Commit subjects become queries whose answers are the files each commit modified;
    the same queries with those files removed are the negatives. The fitted calibration
    is used for searches of this source, whatever the embedding model.
    """
    from contextd.catalog import Catalog
    from contextd.confidence import shipped, source_path
    from contextd.evaluation import (
        HISTORY_L2,
        PRIOR_L2,
        evaluate,
        fit,
        history_queries,
        report,
        rescore,
    )

    s = settings()
    catalog = Catalog(s.catalog_path)
    try:
        row = catalog.source(source)
    finally:
        catalog.close()
    path = source_path(s.home, source)
    if reset:
        existed = path.exists()
        path.unlink(missing_ok=True)
        console.print(
            f"Dropped {source}'s calibration ({path}); its searches use the shipped one, "
            "if the model has one."
            if existed
            else f"{source} had no calibration of its own."
        )
        return
    if row.kind != "git":
        raise ContextdError(
            f"{source} is a folder, not a git repository: calibration learns from history."
        )
    from contextd.evaluation import git_dir_of

    rows = history_queries(git_dir_of(row.root), limit=limit)
    if len(rows) < 20:
        raise ContextdError(
            f"Only {len(rows)} usable commits in {source}'s history; calibration needs at "
            "least 20 (merges, bots, version bumps, tests-only and docs-only commits are "
            "left out)."
        )
    if not quiet:
        err_console.print(f"{len(rows)} queries from {source}'s history.")
    result = evaluate(row.root, rows, s, progress=_progress(quiet))
    from contextd.embedder import SentenceTransformerEmbedder

    model_id = SentenceTransformerEmbedder(s).model_id
    origin = f"history of source {source}: {len(rows)} commits up to {rows[0]['commit'][:12]}"
    # With a shipped calibration for this model, the source's history adjusts it; a
    # model without one is fitted from its history alone.
    prior = shipped(model_id)
    if prior is not None:
        origin += ", adjusting the shipped calibration"
    cal = fit(result.records, model_id, origin, l2=PRIOR_L2 if prior else HISTORY_L2, prior=prior)
    cal.save(path)
    figures = report(rescore(result.records, cal))
    before = ""
    if prior is not None:  # what the user had, on the same queries
        was = report(rescore(result.records, prior))
        before = f"; the shipped calibration scored AUROC {was['auroc']}, ECE {was['ece']}"
    console.print(
        f"calibrated {source} on {figures['n']} queries: AUROC {figures['auroc']}, "
        f"ECE {figures['ece']} (in-sample{before}), Recall@5 {figures['recall@5']}. "
        f"Stored in {path}. Searches of {source} alone (`--source {source}`, or any "
        f"search while it is the only source) use it; `contextd calibrate {source} --reset` "
        "goes back to the shipped calibration."
    )
