"""Fit the shipped calibration from evaluation records, and say how well it generalises.

    python bench/fit_calibration.py RECORDS.jsonl [...] [--history RECORDS.jsonl ...]
        [--mix RECORDS.jsonl:N] [--foreign 0.6] [--write] [--plot DIR]

RECORDS files come from `bench/eval_commits.py --records` (one per repository). Prints,
per repository, the confidence figures of a calibration fitted on the *other*
repositories (leave one repository out: an honest view of a repository it has never
seen), then those of the calibration fitted on all of them. --write stores the latter
as contextd/resources/calibration/<model>.json, the file the package ships.

--history adds fitting data of a repository's own: records of queries built from its
older history (`contextd calibrate`'s kind), in files named after the set they belong to
(`psf+requests.hist.jsonl` goes with `psf+requests.jsonl`). They are fitted on except when
their repository is the one held out, and never reported.

--mix adds another kind of query to every fit: N of its queries (a fixed shuffle), e.g.
`bench/cosqa.py --records` (web questions over single functions). Its other queries are
never fitted on and are reported apart, so that figure is held out too.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from contextd.confidence import VERDICTS, _slug
from contextd.embedder import DEFAULT_MODEL_ID
from contextd.evaluation import Record, fit, read_records, report, rescore

OUT = Path(__file__).resolve().parent.parent / "contextd" / "resources" / "calibration"
KEYS = (
    "n", "recall@5", "mrr@10", "auroc", "ece", "recall@5_at_80_coverage",
    "confidence_auroc", "confidence_ece",
)  # fmt: skip


def line(name: str, figures: dict) -> str:
    return f"{name:14s} " + " ".join(f"{k} {figures[k]}" for k in KEYS)


def macro(rows: list[dict]) -> dict:
    return {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in KEYS}


def split_mix(spec: str) -> tuple[str, list[Record], list[Record]]:
    """PATH:N -> (name, N queries to fit on, the rest), both conditions of a query together."""
    path, _, n = spec.rpartition(":")
    records = read_records(Path(path))
    queries = sorted({r.query for r in records})
    random.Random(0).shuffle(queries)
    chosen = set(queries[: int(n)])
    return (
        Path(path).stem,
        [r for r in records if r.query in chosen],
        [r for r in records if r.query not in chosen],
    )


def foreign_share(records: list[Record], share: float) -> list[Record]:
    foreign = [r for r in records if r.condition == "foreign"]
    return [r for r in records if r.condition != "foreign"] + foreign[: int(len(foreign) * share)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("records", type=Path, nargs="+")
    p.add_argument(
        "--history",
        type=Path,
        nargs="*",
        default=[],
        help="fit-only records of a set's own older history, named SET.<anything>.jsonl",
    )
    p.add_argument("--mix", help="PATH:N, N queries of another kind added to every fit")
    p.add_argument("--l2", type=float, default=2.0)
    p.add_argument(
        "--foreign",
        type=float,
        default=0.6,
        help="share of the records' foreign questions to fit on (they teach what an "
        "unrelated question looks like; all of them would skew the base rate)",
    )
    p.add_argument("--write", action="store_true")
    p.add_argument("--plot", type=Path, help="write the held-out reliability diagram here")
    p.add_argument(
        "--no-rerank",
        dest="rerank",
        action="store_false",
        help="keep the fused order (the hit model only states confidence)",
    )
    a = p.parse_args()
    sets = {path.stem: foreign_share(read_records(path), a.foreign) for path in a.records}
    history: dict[str, list[Record]] = {name: [] for name in sets}
    for path in a.history:
        name = path.name.split(".")[0]
        if name not in sets:
            p.error(f"--history {path}: no records file for the set {name}")
        history[name] += [r for r in read_records(path) if r.condition != "foreign"]
    mix_name, mixed, mix_rest = split_mix(a.mix) if a.mix else ("", [], [])
    held_out, unseen = [], []
    print(f"leave one repository out (rerank={a.rerank}):")
    for name, records in sets.items():
        others = [r for other, rs in sets.items() if other != name for r in rs + history[other]]
        others += mixed
        cal = fit(others, DEFAULT_MODEL_ID, "cv", a.l2, a.rerank)
        scored = rescore(records, cal)
        unseen += scored
        figures = report(scored)
        held_out.append(figures)
        print("  " + line(name, figures))
    print("  " + line("macro", macro(held_out)))
    # ECE over 10 bins is noisy on one repository's ~150-290 answers; pooled is steadier.
    print("  " + line("pooled", report(unseen)))
    if a.plot:
        from contextd import plots

        title = " · ".join(n.split("+")[-1] for n in sets) + ", each held out"
        for path in plots.write(unseen, a.plot, title):
            print(f"  wrote {path}")
    names = ", ".join(sets)
    if mixed:
        names += f", {len(mixed) // 2} {mix_name} queries"
    if a.history:
        names += f", {sum(len(h) for h in history.values()) // 2} older commits of theirs"
    everything = [r for name, rs in sets.items() for r in rs + history[name]] + mixed
    cal = fit(everything, DEFAULT_MODEL_ID, f"{names} (contextd's dev sets)", a.l2, a.rerank)
    print("fitted on all:")
    fitted = []
    for name, records in sets.items():
        figures = report(rescore(records, cal))
        fitted.append(figures)
        print("  " + line(name, figures))
    print("  " + line("macro", macro(fitted)))
    scored = rescore([r for rs in sets.values() for r in rs], cal)
    print("  " + line("pooled", report(scored)))
    if mix_rest:
        print("  " + line(f"{mix_name} rest", report(rescore(mix_rest, cal))) + " (not fitted on)")
    asked = {
        "full": "the gold files present",
        "hidden": "the gold files removed",
        "foreign": "another project's questions",
    }
    for condition, label in asked.items():
        part = [cal.verdict(float(r.answerable or 0)) for r in scored if r.condition == condition]
        if part:
            shares = ", ".join(f"{v} {part.count(v) / len(part):.0%}" for v in VERDICTS)
            print(f"verdicts with {label}: {shares} (n={len(part)})")
    print("weights (standardised features):")
    for model in (cal.hit, cal.answerable, cal.relevant):
        pairs = zip(model.features, model.weights, strict=True)
        print("  " + ", ".join(f"{f} {w:+.2f}" for f, w in pairs))
    if a.write:
        path = OUT / f"{_slug(DEFAULT_MODEL_ID)}.json"
        cal.save(path)
        print(f"wrote {path}")
    summary = {
        "held_out_macro": macro(held_out),
        "held_out_pooled": {k: report(unseen)[k] for k in KEYS},
        "fitted_macro": macro(fitted),
        "fitted_pooled": {k: report(scored)[k] for k in KEYS},
    }
    if mix_rest:
        summary[f"{mix_name}_not_fitted"] = {k: report(rescore(mix_rest, cal))[k] for k in KEYS}
    print("summary: " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
