"""File-level retrieval and confidence on commit-history queries (shared/eval/commits).

    python bench/eval_commits.py QUERIES.jsonl GIT_DIR [--records OUT.jsonl] [--long]
        [--foreign OTHER.jsonl ...]

The same run as `contextd eval GIT_DIR --queries QUERIES.jsonl --json`, restricted like
the published baselines (shared/eval/BASELINES.md) to .py .md .rst .txt .cfg .toml .yaml
files of at most 200 KB. --records keeps every query's features and labels for
`bench/fit_calibration.py`; with --foreign, the subjects of other projects' commits are
asked too (one per step), as questions the index cannot answer. Prints the report as one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from contextd.evaluation import evaluate, load_queries, report, save_records
from contextd.settings import Settings

BASELINE_EXTENSIONS = [".py", ".md", ".rst", ".txt", ".cfg", ".toml", ".yaml"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("queries", type=Path)
    p.add_argument("git_dir", type=Path)
    p.add_argument("--records", type=Path)
    p.add_argument("--long", action="store_true", help="ask query_long instead of query")
    p.add_argument("--foreign", type=Path, nargs="*", default=[])
    a = p.parse_args()
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
    )
    if a.records:
        save_records(result.records, a.records)
    figures = report(result.records)
    print(json.dumps({"set": a.queries.stem, **figures, "seconds": round(result.seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
