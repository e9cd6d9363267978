"""File-level retrieval on commit-history queries, with the ordinary pipeline.

    python bench/eval_commits.py QUERIES.jsonl GIT_DIR [--limit N]

Queries (the format of shared/eval/commits) are taken in date order. A scratch folder
holds the tree at each query's parent, updated from the previous parent by rewriting
only the files that differ (so only those are re-read and re-embedded); the folder is
indexed as a source and asked the query. Like the published baselines, only .py .md
.rst .txt .cfg .toml .yaml files of at most 200 KB are indexed. Reports R@1/5/10 (share
of gold files in the top k files) and MRR of the first gold file, as BASELINES.md does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contextd.app import App
from contextd.search import search
from contextd.settings import Settings

EXTENSIONS = (".py", ".md", ".rst", ".txt", ".cfg", ".toml", ".yaml")
IGNORE = "*\n!*/\n" + "".join(f"!*{e}\n" for e in EXTENSIONS) + "/.contextdignore\n"


def git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", git_dir, *args], capture_output=True, check=True
    ).stdout


def checkout(git_dir: str, tree: Path, commit: str, previous: str | None) -> None:
    if previous is None:
        archive = git(git_dir, "archive", commit)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return
    diff = git(git_dir, "diff", "--name-status", "--no-renames", "-z", previous, commit)
    fields = diff.split(b"\0")
    for status, name in zip(fields[0::2], fields[1::2], strict=False):
        path = tree / name.decode()
        if status.startswith(b"D"):
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(git(git_dir, "show", f"{commit}:{name.decode()}"))


def ranked_files(hits: list) -> list[str]:
    files: list[str] = []
    for h in hits:
        if h.path not in files:
            files.append(h.path)
    return files


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("queries")
    p.add_argument("git_dir")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--long", action="store_true", help="use query_long")
    a = p.parse_args()
    rows = [json.loads(line) for line in Path(a.queries).read_text().splitlines() if line]
    rows.sort(key=lambda r: r["date"])
    if a.limit:
        rows = rows[: a.limit]
    started = time.perf_counter()
    metrics = {"r1": [], "r5": [], "r10": [], "mrr": []}
    leak = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="contextd-eval-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        (tree / ".contextdignore").write_text(IGNORE)
        app = App(Settings(home=Path(tmp) / "home", max_file_bytes=200 * 1024))
        row = app.catalog.add_source("tree", tree, "folder")
        previous = None
        for q in rows:
            checkout(a.git_dir, tree, q["parent"], previous)
            previous = q["parent"]
            app.index(app.catalog.source(row.name))
            files = ranked_files(search(app, q["query_long" if a.long else "query"], k=60))
            gold = set(q["gold_files"])
            for k in (1, 5, 10):
                metrics[f"r{k}"].append(len(gold & set(files[:k])) / len(gold))
            first = next((i for i, f in enumerate(files, 1) if f in gold), None)
            metrics["mrr"].append(1 / first if first else 0.0)
            leak[bool(q.get("leak_filename_in_query"))].append(metrics["r5"][-1])
        app.close()
    n = len(rows)
    mean = {k: sum(v) / n for k, v in metrics.items()}
    strata = ", ".join(
        f"leak={k}: R@5 {sum(v) / len(v):.3f} (n={len(v)})" for k, v in leak.items() if v
    )
    print(
        f"{Path(a.queries).stem}: n={n} R@1 {mean['r1']:.3f} R@5 {mean['r5']:.3f} "
        f"R@10 {mean['r10']:.3f} MRR {mean['mrr']:.3f} ({strata}) "
        f"in {time.perf_counter() - started:.0f}s",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
