"""File-level retrieval and confidence on commit-history queries (shared/eval/commits).

    python bench/eval_commits.py QUERIES.jsonl GIT_DIR [--records OUT.jsonl] [--long]
        [--foreign OTHER.jsonl ...] [--modes dense,lexical]

The same run as `contextd eval GIT_DIR --queries QUERIES.jsonl --json`, restricted like
the published baselines (shared/eval/BASELINES.md) to .py .md .rst .txt .cfg .toml .yaml
files of at most 200 KB. --records keeps every query's features and labels for
`bench/fit_calibration.py`; with --foreign, the subjects of other projects' commits are
asked too (one per step), as questions the index cannot answer. --modes asks every
query again with search's dense side alone and its lexical side alone, on the same
scratch index, to show what the fusion adds. Prints the report as one JSON line, then one
line of retrieval figures per extra mode.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from contextd.evaluation import evaluate, load_queries, mode_records, report, save_records
from contextd.search import MODES
from contextd.settings import Settings

BASELINE_EXTENSIONS = [".py", ".md", ".rst", ".txt", ".cfg", ".toml", ".yaml"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("queries", type=Path)
    p.add_argument("git_dir", type=Path)
    p.add_argument("--records", type=Path)
    p.add_argument("--long", action="store_true", help="ask query_long instead of query")
    p.add_argument("--foreign", type=Path, nargs="*", default=[])
    p.add_argument("--modes", default="", help="also ask in these search modes, e.g. dense,lexical")
    a = p.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    if set(modes) - set(MODES):
        p.error(f"--modes: use some of {', '.join(MODES)}")
    settings = Settings(max_file_bytes=200 * 1024)
    foreign = [q["query"] for path in a.foreign for q in load_queries(path)]
    random.Random(0).shuffle(foreign)
    result = evaluate(
        a.git_dir,
        load_queries(a.queries),
        settings,
        progress=lambda i, n, line: print(f"{i}/{n} {line}", file=sys.stderr, flush=True),
        extensions=BASELINE_EXTENSIONS,
        long=a.long,
        foreign=foreign,
        also_modes=modes,
    )
    if a.records:
        save_records([r for r in result.records if ":" not in r.condition], a.records)
    figures = report(result.records)
    print(json.dumps({"set": a.queries.stem, **figures, "seconds": round(result.seconds)}))
    for mode in modes:
        alone = report(mode_records(result.records, mode))
        keys = ("n", "recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")
        print(json.dumps({"set": a.queries.stem, "mode": mode, **{k: alone[k] for k in keys}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
