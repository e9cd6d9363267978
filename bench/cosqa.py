"""CoSQA dev-500 through the ordinary pipeline: 6,267 functions indexed as files.

    python bench/cosqa.py [--eval-dir ../shared/eval] [--home DIR]

Each function of `code_idx_map.txt` becomes `functions/f<idx>.py` in a folder that is
added as a source and indexed like any other (tree-sitter chunks, embeddings, FTS5).
The 500 queries are asked through `contextd.search`; a file's rank is that of its best
result. Prints MRR@10, R@1/5/10 and nDCG@10 for hybrid search and for each of its parts
(dense only, lexical only) on the same index, then one summary line. With --home the
index is kept, so a second run only checks it (nothing is re-embedded).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from contextd.app import App
from contextd.errors import ChunkerMismatch
from contextd.evaluation import ask, save_records
from contextd.search import MODES, search
from contextd.settings import Settings

HERE = Path(__file__).resolve().parent


def write_corpus(eval_dir: Path, folder: Path) -> int:
    corpus = json.loads((eval_dir / "cosqa" / "code_idx_map.txt").read_text())
    functions = folder / "functions"
    functions.mkdir(parents=True, exist_ok=True)
    for code, idx in corpus.items():
        path = functions / f"f{idx}.py"
        if not path.exists() or path.read_text() != code + "\n":
            path.write_text(code + "\n")
    return len(corpus)


def metrics(ranked: list[list[str]], gold: list[str]) -> dict[str, float]:
    out = {"mrr@10": 0.0, "r@1": 0.0, "r@5": 0.0, "r@10": 0.0, "ndcg@10": 0.0}
    for files, g in zip(ranked, gold, strict=True):
        rank = files.index(g) + 1 if g in files[:10] else None
        if rank:
            out["mrr@10"] += 1 / rank
            out["ndcg@10"] += 1 / math.log2(rank + 1)
            for k in (1, 5, 10):
                out[f"r@{k}"] += rank <= k
    return {k: v / len(gold) for k, v in out.items()}


def ask_both(app: App, corpus: Path, queries: list[dict], gold: list[str]) -> list:
    """Each query with the full index and with its gold function removed from it."""
    source = app.catalog.source("cosqa")
    records = []
    for i, (q, g) in enumerate(zip(queries, gold, strict=True), 1):
        row = {"query": q["doc"], "gold_files": [g]}
        records.append(ask(app, row, "full", False))
        path = corpus / g
        code = path.read_bytes()
        path.unlink()
        app.index(source, scope=[g])
        records.append(ask(app, row, "hidden", False))
        path.write_bytes(code)
        app.index(source, scope=[g])
        if i % 100 == 0:
            print(f"records: {i}/{len(queries)}", file=sys.stderr, flush=True)
    return records


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval-dir", type=Path, default=HERE.parent.parent / "shared" / "eval")
    p.add_argument("--home", type=Path, help="keep the index here between runs")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument(
        "--records",
        type=Path,
        help="ask each query with and without its gold "
        "function too, and keep features and labels here (for fitting)",
    )
    a = p.parse_args()
    queries = json.loads((a.eval_dir / "cosqa" / "cosqa-retrieval-dev-500.json").read_text())
    with tempfile.TemporaryDirectory(prefix="contextd-cosqa-") as tmp:
        base = a.home or Path(tmp)
        n = write_corpus(a.eval_dir, base / "corpus")
        app = App(Settings(home=base / "home"))
        if not app.catalog.sources():
            app.catalog.add_source("cosqa", base / "corpus", "folder")
        started = time.perf_counter()
        try:
            stats = app.index(app.catalog.source("cosqa"))
        except ChunkerMismatch:  # a kept index from an older chunker: rebuilt from the cache
            print("the kept index has an older chunker: indexing it again", flush=True)
            app.reset_index()
            stats = app.index(app.catalog.source("cosqa"))
        print(
            f"indexed {n} functions: {stats.files} files, {stats.chunks} chunks, "
            f"{stats.embedded} embedded in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        gold = [f"functions/f{q['retrieval_idx']}.py" for q in queries]
        results = {}
        for mode in a.modes.split(","):
            started = time.perf_counter()
            ranked = []
            for q in queries:
                files: list[str] = []
                for h in search(app, q["doc"], k=30, mode=mode, files=True).hits:
                    if h.path not in files:
                        files.append(h.path)
                ranked.append(files)
            m = metrics(ranked, gold)
            results[mode] = m
            ms = (time.perf_counter() - started) / len(queries) * 1000
            print(
                f"{mode:8s} "
                + " ".join(f"{k} {v:.3f}" for k, v in m.items())
                + f" ({ms:.1f} ms/query)",
                flush=True,
            )
        if a.records:
            save_records(ask_both(app, base / "corpus", queries, gold), a.records)
        app.close()
    parts = " ".join(f"{k} {v['mrr@10']:.3f}" for k, v in results.items())
    print(f"summary: CoSQA dev-500 over {n} functions, MRR@10 {parts} (target hybrid >= 0.56)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
