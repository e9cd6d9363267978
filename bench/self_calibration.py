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
import sys
from pathlib import Path

from eval_commits import BASELINE_EXTENSIONS

from contextd.confidence import Calibration
from contextd.embedder import DEFAULT_MODEL_ID
from contextd.evaluation import (
    HISTORY_L2,
    Record,
    evaluate,
    fit,
    git,
    history_queries,
    load_queries,
    read_records,
    report,
    rescore,
    save_records,
)
from contextd.settings import Settings

HERE = Path(__file__).resolve().parent
KEYS = ("recall@5", "auroc", "ece", "recall@5_at_80_coverage")


def records(path: Path, git_dir: Path, queries: list[dict], settings: Settings) -> list[Record]:
    """The queries' records, asked once and kept at `path`."""
    if not path.exists():
        asked = evaluate(git_dir, queries, settings, extensions=BASELINE_EXTENSIONS)
        save_records(asked.records, path)
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
        before = git(str(git_dir), "rev-list", "-1", f"--before={first}", "HEAD").strip()
        older = history_queries(str(git_dir), a.limit, before)
        print(
            f"{name}: {len(queries)} queries from {first[:10]}; {len(older)} older commits "
            f"{older[-1]['date'][:10]}..{older[0]['date'][:10]}",
            file=sys.stderr,
            flush=True,
        )
        dev[name] = records(a.work / f"{name}.jsonl", git_dir, queries, settings)
        history[name] = records(a.work / f"{name}.history.jsonl", git_dir, older, settings)
    figures: dict[str, list[dict]] = {}
    for name, own in dev.items():
        others = [r for other, rs in dev.items() if other != name for r in rs]
        cals: dict[str, Calibration] = {}
        if others:
            cals["prior"] = fit(others, DEFAULT_MODEL_ID, "prior", 2.0)  # as fit_calibration
        cals["history"] = fit(history[name], DEFAULT_MODEL_ID, "history", HISTORY_L2)
        for l2 in a.l2.split(",") if others else []:
            cals[f"adjusted at {l2}"] = fit(
                history[name], DEFAULT_MODEL_ID, "adjusted", float(l2), prior=cals["prior"]
            )
        for way, cal in cals.items():
            f = report(rescore(own, cal))
            figures.setdefault(way, []).append(f)
            print(f"{name:16s} {way:15s} n {f['n']} " + " ".join(f"{k} {f[k]}" for k in KEYS))
    macro = {
        way: {k: round(sum(f[k] for f in rows) / len(rows), 4) for k in KEYS}
        for way, rows in figures.items()
    }
    for way, m in macro.items():
        print(f"{'macro':16s} {way:15s} " + " ".join(f"{k} {v}" for k, v in m.items()))
    print("summary: " + json.dumps(macro))
    return 0


if __name__ == "__main__":
    sys.exit(main())
