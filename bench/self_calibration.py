"""Does `contextd calibrate` help? A repository's own older history against its later queries.

    python bench/self_calibration.py GIT_DIR [...] --work DIR [--eval-dir ../shared/eval]
        [--limit 100] [--l2 10,30]

For each repository (its queries are `EVAL_DIR/commits/<owner>+<name>.jsonl`, named
after the mirror folder holding GIT_DIR, e.g. /work/.mirror/psf+requests/repo), the
`--limit` newest usable commits *before* its first query become a calibration set, as
`contextd calibrate` builds one. Its queries are then scored four ways, each held out
from the repository's own queries:

- prior: the calibration fitted on the other repositories' queries (what a repository
  the shipped calibration never saw gets);
- history: fitted on the repository's older history alone (`calibrate` without a prior);
- adjusted at L2: the prior, adjusted by the older history (what `calibrate` does).

Records are kept in --work, so a second run only refits. Prints one line per repository
and way, the macro figures, and a summary line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from contextd.embedder import DEFAULT_MODEL_ID
from contextd.evaluation import (
    Record,
    evaluate,
    fit,
    history_queries,
    load_queries,
    read_records,
    report,
    rescore,
    save_records,
)
from contextd.settings import Settings

HERE = Path(__file__).resolve().parent
EXTENSIONS = [".py", ".md", ".rst", ".txt", ".cfg", ".toml", ".yaml"]  # as eval_commits
KEYS = ("recall@5", "auroc", "ece", "recall@5_at_80_coverage")


def records(path: Path, make) -> list[Record]:
    if not path.exists():
        save_records(make(), path)
    return [r for r in read_records(path) if r.condition != "foreign"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("git_dirs", type=Path, nargs="+")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--eval-dir", type=Path, default=HERE.parent.parent / "shared" / "eval")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--l2", default="10,30", help="strengths of the pull toward the prior")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    settings = Settings(max_file_bytes=200 * 1024)
    dev: dict[str, list[Record]] = {}
    history: dict[str, list[Record]] = {}
    for git_dir in a.git_dirs:
        name = git_dir.resolve().parent.name
        queries = load_queries(a.eval_dir / "commits" / f"{name}.jsonl")
        first = min(q["date"] for q in queries)
        before = subprocess.run(
            ["git", "--git-dir", str(git_dir), "rev-list", "-1", f"--before={first}", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        older = history_queries(str(git_dir), a.limit, before)
        print(
            f"{name}: {len(queries)} queries from {first[:10]}; {len(older)} older commits "
            f"{older[-1]['date'][:10]}..{older[0]['date'][:10]}",
            file=sys.stderr,
            flush=True,
        )
        dev[name] = records(
            a.work / f"{name}.jsonl",
            lambda g=git_dir, q=queries: evaluate(g, q, settings, extensions=EXTENSIONS).records,
        )
        history[name] = records(
            a.work / f"{name}.history.jsonl",
            lambda g=git_dir, q=older: evaluate(g, q, settings, extensions=EXTENSIONS).records,
        )
    ways = ["prior", "history"] + [f"adjusted at {v}" for v in a.l2.split(",")]
    figures: dict[str, list[dict]] = {way: [] for way in ways}
    for name, own in dev.items():
        others = [r for other, rs in dev.items() if other != name for r in rs]
        prior = fit(others, DEFAULT_MODEL_ID, "prior", 2.0) if others else None
        for way in ways:
            if way == "prior":
                if prior is None:
                    continue
                cal = prior
            elif way == "history":
                cal = fit(history[name], DEFAULT_MODEL_ID, way, 2.0)
            else:
                if prior is None:
                    continue
                l2 = float(way.rsplit(" ", 1)[1])
                cal = fit(history[name], DEFAULT_MODEL_ID, way, l2, prior=prior)
            f = report(rescore(own, cal))
            figures[way].append(f)
            print(f"{name:16s} {way:15s} n {f['n']} " + " ".join(f"{k} {f[k]}" for k in KEYS))
    macro = {
        way: {k: round(sum(f[k] for f in rows) / len(rows), 4) for k in KEYS}
        for way, rows in figures.items()
        if rows
    }
    for way, m in macro.items():
        print(f"{'macro':16s} {way:15s} " + " ".join(f"{k} {v}" for k, v in m.items()))
    print("summary: " + json.dumps(macro))
    return 0


if __name__ == "__main__":
    sys.exit(main())
