"""Documentation questions: how search and `answerable` do on "how do I ..." questions
whose answer is a page of a project's docs, and on such questions it cannot answer.

    python bench/doc_questions.py GIT_DIR [GIT_DIR ...] [--home DIR]

The questions (`bench/doc_questions.jsonl`) were written by hand for this bench, not
taken from `../shared/eval`: 30 with their docs page (`gold_files`), 15 that the project
does not answer (`gold_files` empty), on pallets/flask and encode/httpx at the commits
named there. Each GIT_DIR is a clone of one of them (a bare one will do); its tree at that
commit is read with `git archive` and indexed as a folder source. The calibration was
fitted on code-change queries, so this measures how far it carries to another kind.
Prints a line per question, then Recall@1/5 of the first docs page, the mean
`answerable` of each kind, their AUROC and the verdicts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from contextd.app import App
from contextd.evaluation import auroc
from contextd.search import search
from contextd.settings import Settings

HERE = Path(__file__).resolve().parent


def source_name(repo: str) -> str:
    return repo.split("/")[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("git_dirs", nargs="+", type=Path)
    ap.add_argument("--questions", type=Path, default=HERE / "doc_questions.jsonl")
    ap.add_argument("--home", type=Path, help="keep the index here (reused when it exists)")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line]
    wanted = {r["repo"]: r["commit"] for r in rows}
    with tempfile.TemporaryDirectory(prefix="contextd-docq-") as scratch:
        home = args.home or Path(scratch) / "home"
        app = App(Settings(home=home))
        try:
            known = {r.name for r in app.catalog.sources()}
            for git_dir in args.git_dirs:
                repo = next((r for r in wanted if _has(git_dir, wanted[r])), None)
                if repo is None:
                    raise SystemExit(f"{git_dir} has none of the commits the questions name.")
                name = source_name(repo)
                if name in known:
                    continue
                tree = Path(scratch) / name
                tree.mkdir()
                archive = subprocess.run(
                    ["git", "--git-dir", str(git_dir), "archive", wanted[repo]],
                    check=True,
                    capture_output=True,
                ).stdout
                subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
                stats = app.index(app.catalog.add_source(name, tree, "folder"))
                print(f"{name}: {stats.files} files, {stats.chunks} chunks indexed")
            report(app, rows)
        finally:
            app.close()


def _has(git_dir: Path, commit: str) -> bool:
    done = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
    )
    return done.returncode == 0


def report(app: App, rows: list[dict]) -> None:
    known = {r.name for r in app.catalog.sources()}
    asked = [r for r in rows if source_name(r["repo"]) in known]
    ranks: list[int | None] = []
    answerable: dict[bool, list[float]] = {True: [], False: []}
    verdicts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    for r in asked:
        answer = search(app, r["query"], k=10, sources=[source_name(r["repo"])], files=True)
        paths = [h.path for h in answer.hits]
        rank = next((i + 1 for i, p in enumerate(paths) if p in r["gold_files"]), None)
        held = bool(r["gold_files"])
        if held:
            ranks.append(rank)
        answerable[held].append(answer.answerable or 0.0)
        verdicts[held][answer.verdict or "none"] += 1
        print(
            f"{'answer' if held else 'none  '} rank {rank or '-':>2} {answer.verdict:>9} "
            f"{answer.answerable or 0:.2f}  {r['query']!r} -> {paths[:2]}"
        )
    n = len(ranks)
    r1 = sum(1 for x in ranks if x == 1) / n
    r5 = sum(1 for x in ranks if x and x <= 5) / n
    labels = [1] * len(answerable[True]) + [0] * len(answerable[False])
    scores = answerable[True] + answerable[False]
    print(
        f"summary: {n} documentation questions with an answer, {len(answerable[False])} "
        f"without: docs page Recall@1 {r1:.2f} Recall@5 {r5:.2f}; mean answerable "
        f"{sum(answerable[True]) / n:.2f} with an answer, "
        f"{sum(answerable[False]) / max(1, len(answerable[False])):.2f} without "
        f"(AUROC {auroc(scores, labels) or 0:.3f}); verdicts with an answer "
        f"{dict(verdicts[True])}, without {dict(verdicts[False])}"
    )


if __name__ == "__main__":
    main()
