"""`contextd eval` and `contextd calibrate`: retrieval and confidence measured on history.

A query is a commit subject; its answer is the files the commit modified; it is asked of
the tree at the commit's parent. Trees are read from git objects (a bare repository is
fine) into a scratch folder that is indexed as a source in a scratch data dir, walked
from one parent to the next in date order, so each step re-indexes only what differs.
Nobody's working tree or index is touched.

Each query is asked twice: with the full tree, and with its gold files removed from the
index (the hardest kind of "the answer is not here"). The first measures retrieval; the
pair measures whether `answerable` can tell the two apart.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from contextd.app import App
from contextd.confidence import (
    ANSWER_K,
    HIT_FEATURES,
    QUERY_FEATURES,
    SIGNS,
    Calibration,
    Logistic,
    logit,
)
from contextd.connectors.filters import secret_reason
from contextd.errors import ContextdError
from contextd.home import make_home
from contextd.search import DOC_PATH, TEST_PATH, search
from contextd.settings import Settings

Progress = Callable[[int, int, str], None]
RANKED = 60  # files kept per answer
BOT = re.compile(r"\[bot\]|dependabot|renovate|pre-commit-ci|github-actions|\bbot\b", re.I)
# A version number alone is no bump: "Drop support for Python 3.7" changes code.
VERSION_BUMP = re.compile(
    r"^(release|prepare|bump|version|changelog|update changelog)\b|^v?\d+(\.\d+)+\S*$"
    r"|\bbump(ed)? (version|to)\b|\brelease (v?\d|notes)\b"
    r"|^(update|set|change|increment) (the )?(package )?version\b"
    r"|^(start|begin|open) (the )?(next )?(version|release|development|dev)\b"  # pallets'
    r"|\bpost-?release\b|^back to (development|dev)\b|\bversion bump\b",
    re.I,
)
# Subjects that say nothing of the change: a revert's (its original is a query of its
# own), and GitHub's default for an edit in the browser ("Update command.go (#2248)").
WEAK_SUBJECT = re.compile(r"^revert\b|^(update|create|delete|rename) [\w./-]+\.\w+$", re.I)
PR_REF = re.compile(r"\s*\((?:#|gh-)\d+\)|\s+#\d+$", re.I)  # "(#745)", "(gh-12)"

CODE_SUFFIXES = {
    ".py", ".js", ".jsx", ".mjs", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".h",
    ".cc", ".cpp", ".hpp", ".rb",
}  # fmt: skip
MAX_GOLD = 8  # sweeping commits (renames, reformatting) say little about any one file
FITTED_ON = "history"


# -- git ------------------------------------------------------------------------------------


def git(git_dir: str, *args: str, data: bool = False, stdin: bytes | None = None) -> Any:
    done = subprocess.run(["git", "--git-dir", git_dir, *args], input=stdin, capture_output=True)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        err = lines[0] if lines else f"exit status {done.returncode}"  # git's hints follow
        raise ContextdError(f"git {' '.join(args[:2])} failed in {git_dir}: {err}")
    return done.stdout if data else done.stdout.decode("utf-8", "replace")


def check_parents(git_dir: str, rows: list[dict[str, Any]], where: Path) -> None:
    """Every query's parent is a commit of this repository, or an error naming the first
    that is not (queries made from another repository, or a history rewritten since)."""
    asked = "".join(f"{r['parent']}^{{commit}}\n" for r in rows).encode()
    answers = git(git_dir, "cat-file", "--batch-check", stdin=asked).splitlines()
    for n, (row, answer) in enumerate(zip(rows, answers, strict=False), 1):
        if answer.endswith(" missing") or answer.endswith(" ambiguous") or not answer:
            raise ContextdError(
                f"Query {n} of {where} ({row['query'][:60]!r}) asks at commit "
                f"{row['parent'][:12]}, which {git_dir} does not have. Were these queries made "
                "from another repository? Give that repository, or fetch the missing history."
            )
    if len(answers) != len(rows):
        raise ContextdError(f"Could not check the queries' commits in {git_dir}.")


def git_dir_of(repo: Path) -> str:
    """The git directory of a repository path, a bare one included."""
    if not repo.exists():
        raise ContextdError(f"{repo} does not exist. Give the path of a git repository.")
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--absolute-git-dir"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ContextdError(f"{repo} is not a git repository (a bare one will do).")
    return done.stdout.strip()


def is_test(path: str) -> bool:
    return bool(TEST_PATH.search(path))


def is_doc(path: str) -> bool:
    """Documentation: prose, or a file in a docs folder that is not code (a Go package
    under `doc/` that generates man pages is code)."""
    return bool(DOC_PATH.search(path)) and Path(path).suffix not in CODE_SUFFIXES


def history_queries(git_dir: str, limit: int = 100, rev: str = "HEAD") -> list[dict[str, Any]]:
    """Labelled queries from history: commit subject -> files it modified, at the parent.

    Merges, bots, version bumps, tests-only and docs-only commits are left out; gold
    files are the modified non-test code files (they existed at the parent).
    """
    try:
        git(git_dir, "rev-parse", "--verify", "-q", rev)
    except ContextdError:
        raise ContextdError(
            f"{git_dir} has no commit {rev} (a repository with no commits yet?): there is "
            "no history to build queries from. Pass --queries FILE.jsonl instead."
        ) from None
    log = git(
        git_dir,
        "log",
        "--no-merges",
        "--no-renames",
        "--name-status",
        "-z",
        "--format=%x01%H%x00%P%x00%aI%x00%an <%ae>%x00%s%x00%b%x00",
        rev,
    )
    rows: list[dict[str, Any]] = []
    for record in log.split("\x01")[1:]:
        parts = record.split("\x00")
        commit, parents, date, author, subject, body = parts[:6]
        changes = [p for p in parts[6:] if p.strip()]
        statuses = dict(zip(changes[1::2], (s.strip() for s in changes[0::2]), strict=False))
        bare = PR_REF.sub("", subject).strip()  # "Minor tweak (#745)" is two words
        if len(parents.split()) != 1 or BOT.search(author) or VERSION_BUMP.search(bare):
            continue
        if WEAK_SUBJECT.search(bare) or len(bare.split()) < 3:
            continue
        paths = list(statuses)
        if not paths or all(is_test(p) for p in paths) or all(is_doc(p) for p in paths):
            continue
        gold = [
            p
            for p, s in statuses.items()
            if s == "M" and Path(p).suffix in CODE_SUFFIXES and not is_test(p)
        ]
        if not gold or len(gold) > MAX_GOLD:
            continue
        paragraph = body.strip().split("\n\n")[0].strip()
        rows.append(
            {
                "repo": Path(git_dir).parent.name if git_dir.endswith(".git") else git_dir,
                "commit": commit,
                "parent": parents.strip(),
                "date": date,
                "query": subject.strip(),
                "query_long": f"{subject.strip()}\n\n{paragraph}".strip(),
                "gold_files": gold,
                "tests_changed": [p for p in paths if is_test(p)],
                "n_changed": len(paths),
                "leak_filename_in_query": any(
                    Path(g).stem.lower() in subject.lower() for g in gold
                ),
            }
        )
        if len(rows) >= limit:
            break
    return rows


def load_queries(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ContextdError(f"Cannot read {path}: {exc.strerror}.") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            _ = row["parent"], row["query"], list(row["gold_files"])
        except (ValueError, KeyError, TypeError):
            raise ContextdError(
                f"{path}:{n} is not a query row: each line needs JSON with "
                '"parent" (a commit), "query" (text) and "gold_files" (paths), such as '
                '{"parent": "3f2a9c1", "query": "retry on timeout", "gold_files": ["net.py"]}.'
            ) from None
        rows.append(row)
    if rows and not any(row["gold_files"] for row in rows):  # before minutes of indexing
        raise ContextdError(f"No query in {path} names a gold file: nothing could be scored.")
    return rows


# -- the scratch index ------------------------------------------------------------------------


SCRATCH = "scratch"  # in the data dir: eval's trees and indexes, one folder per run


def scratch_dir(settings: Settings) -> Path:
    """Where eval and calibrate unpack a repository's history: inside the data dir (only
    its owner reads it), with what runs killed before left behind swept away."""
    base = settings.home / SCRATCH
    make_home(settings.home)
    base.mkdir(mode=0o700, exist_ok=True)
    for old in base.glob("eval-*-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return base


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's: not ours to sweep
    return True


class Scratch:
    """A scratch data dir and folder holding one repository tree, moved commit by commit."""

    def __init__(self, git_dir: str, base: Path, settings: Settings, extensions: list[str]):
        self.git_dir = git_dir
        self.tree = base / "tree"
        self.tree.mkdir(parents=True)
        if extensions:  # like the published baselines: only these kinds of file
            allow = "".join(f"!*{e}\n" for e in extensions)
            (self.tree / ".contextdignore").write_text(f"*\n!*/\n{allow}/.contextdignore\n")
        self.app = App(settings.model_copy(update={"home": base / "home"}))
        self.row = self.app.catalog.add_source("scratch", self.tree, "folder")
        self.commit: str | None = None

    def goto(self, commit: str) -> None:
        if self.commit is None:
            archive = git(self.git_dir, "archive", commit, data=True)
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                # Secrets of old commits never reach the disk: they are never indexed.
                kept = [m for m in tar.getmembers() if not secret_reason(m.name)]
                tar.extractall(self.tree, members=kept, filter="tar")
        elif commit != self.commit:
            diff = git(
                self.git_dir, "diff", "--name-status", "--no-renames", "-z", self.commit, commit
            )
            fields = diff.split("\0")
            for status, name in zip(fields[0::2], fields[1::2], strict=False):
                if status.startswith("D"):
                    _remove(self.tree / name)
                else:
                    self._write(commit, name)
        self.commit = commit
        self.index()

    def _write(self, commit: str, name: str) -> None:
        if secret_reason(name):
            return
        path = self.tree / name
        try:
            blob = git(self.git_dir, "show", f"{commit}:{name}", data=True)
        except ContextdError:
            return  # a submodule or other non-blob entry
        for parent in reversed(Path(name).parents[:-1]):  # a file here became a folder
            if (self.tree / parent).is_file():
                (self.tree / parent).unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(path)
        path.write_bytes(blob)

    def index(self) -> None:
        self.app.index(self.app.catalog.source(self.row.name))

    @contextmanager
    def hidden(self, paths: list[str]) -> Iterator[None]:
        """The index without these files; they come back (from the cache) afterwards."""
        assert self.commit is not None
        for p in paths:
            (self.tree / p).unlink(missing_ok=True)
        self.index()
        try:
            yield
        finally:
            for p in paths:
                self._write(self.commit, p)
            self.index()

    def close(self) -> None:
        self.app.close()


def _remove(path: Path) -> None:
    """A file, or the folder that stood for a submodule (`git archive` writes one, empty,
    and a diff names the submodule like a file) or that a file of that name replaces
    (the diff lists the new file before the old folder's files)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_file() or path.is_symlink():  # not when a file now stands for its folder
        path.unlink()


# -- running and scoring ------------------------------------------------------------------------


@dataclass
class Record:
    """One query asked of one index condition: "full", "hidden" (gold removed), "foreign"."""

    query: str
    condition: str
    gold: list[str]
    files: list[str]
    answerable: float | None
    hit_features: list[list[float]]
    hit_labels: list[int]
    query_features: list[float]
    leak: bool = False
    hit_paths: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)  # of each hit_features row

    @property
    def event(self) -> int:
        """A gold file is among the top ANSWER_K files."""
        return int(bool(set(self.gold) & set(self.files[:ANSWER_K])))


def ask(app: App, row: dict[str, Any], condition: str, long: bool, mode: str = "hybrid") -> Record:
    text = str(row.get("query_long") if long and row.get("query_long") else row["query"])
    answer = search(app, text, k=RANKED, files=True, mode=mode)
    gold = list(row["gold_files"])
    files = [h.path for h in answer.hits]
    # Features of the chunk-level results behind the answer, labelled by their file.
    labels = [int(path in gold) for path in answer.feature_paths]
    return Record(
        query=row["query"],
        condition=condition,
        gold=gold,
        files=files,
        answerable=answer.answerable,
        hit_features=answer.hit_features.round(5).tolist(),
        hit_labels=labels,
        query_features=answer.query_features.round(5).tolist(),
        leak=bool(row.get("leak_filename_in_query")),
        hit_paths=answer.feature_paths,
        confidences=answer.confidences.round(5).tolist(),
    )


@dataclass
class Evaluation:
    repo: str
    records: list[Record] = field(default_factory=list)
    calibrated: bool = False
    seconds: float = 0.0


def evaluate(
    repo: Path,
    queries: list[dict[str, Any]],
    settings: Settings,
    progress: Progress | None = None,
    extensions: list[str] | None = None,
    long: bool = False,
    hide_gold: bool = True,
    foreign: list[str] | None = None,
    also_modes: Sequence[str] = (),
) -> Evaluation:
    """Ask every query at its parent commit, with and without its gold files.

    `foreign` queries (about other projects) are asked too, one per step, as the easy
    kind of unanswerable question; they are for fitting and not in the report.
    `also_modes` (search modes, e.g. "dense") ask each query once more per mode, with its
    gold files present, as condition "full:MODE"; the report leaves them out (see
    `mode_records`).
    """
    import time

    started = time.perf_counter()
    git_dir = git_dir_of(repo)
    rows = sorted(queries, key=lambda r: str(r.get("date") or ""))
    out = Evaluation(str(repo))
    with tempfile.TemporaryDirectory(
        prefix=f"eval-{os.getpid()}-", dir=scratch_dir(settings)
    ) as tmp:
        scratch = Scratch(git_dir, Path(tmp), settings, extensions or [])
        try:
            for i, row in enumerate(rows, 1):
                scratch.goto(row["parent"])
                states = scratch.app.catalog.file_states(scratch.row.name)
                present = [
                    g for g in row["gold_files"] if g in states and states[g].status == "indexed"
                ]
                if not present:
                    continue  # the gold files are not indexable here (filtered or absent)
                row = {**row, "gold_files": present}
                out.records.append(ask(scratch.app, row, "full", long))
                for mode in also_modes:
                    out.records.append(ask(scratch.app, row, f"full:{mode}", long, mode))
                if hide_gold:
                    with scratch.hidden(present):
                        out.records.append(ask(scratch.app, row, "hidden", long))
                if foreign:  # a question about another project: nothing here answers it
                    other = {"query": foreign[i % len(foreign)], "gold_files": []}
                    out.records.append(ask(scratch.app, other, "foreign", False))
                if progress:
                    progress(i, len(rows), f"{row.get('commit', '')[:10]} {row['query'][:70]}")
            out.calibrated = scratch.app.calibrations.for_sources(["scratch"]) is not None
        finally:
            scratch.close()
            shutil.rmtree(tmp, ignore_errors=True)
    out.seconds = time.perf_counter() - started
    return out


def mode_records(records: list[Record], mode: str) -> list[Record]:
    """The records one search mode made (see `evaluate(also_modes=...)`), as a report of
    their own reads them: retrieval figures only, since no gold-hidden twin was asked."""
    tag = f"full:{mode}"
    return [replace(r, condition="full") for r in records if r.condition == tag]


def auroc(scores: list[float], labels: list[int]) -> float | None:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def ece(probs: list[float], labels: list[int], bins: int = 10) -> float | None:
    """Expected calibration error over equal-mass bins."""
    if not probs:
        return None
    order = np.argsort(probs, kind="stable")
    p, y = np.array(probs)[order], np.array(labels, dtype=float)[order]
    total = 0.0
    for part in np.array_split(np.arange(len(p)), bins):
        if len(part):
            total += len(part) / len(p) * abs(p[part].mean() - y[part].mean())
    return float(total)


def recall_at(r: Record, k: int) -> float:
    return len(set(r.gold) & set(r.files[:k])) / len(r.gold)


def reciprocal_rank(r: Record) -> float:
    first = next((i for i, f in enumerate(r.files, 1) if f in r.gold), None)
    return 1 / first if first else 0.0


def ndcg10(r: Record) -> float:
    dcg = sum(1 / math.log2(i + 1) for i, f in enumerate(r.files[:10], 1) if f in r.gold)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(r.gold), 10) + 1))
    return dcg / ideal


def report(records: list[Record]) -> dict[str, Any]:
    """The figures of `contextd eval --json`."""
    full = [r for r in records if r.condition == "full"]
    hidden = [r for r in records if r.condition == "hidden"]
    n = len(full)
    if not n:
        raise ContextdError("No query could be asked: none had a gold file in the index.")

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    out: dict[str, Any] = {"n": n}
    for k in (1, 5, 10):
        out[f"recall@{k}"] = mean([recall_at(r, k) for r in full])
    out["mrr"] = mean([reciprocal_rank(r) for r in full])
    out["mrr@10"] = mean([reciprocal_rank(r) if reciprocal_rank(r) >= 0.1 else 0.0 for r in full])
    out["ndcg@10"] = mean([ndcg10(r) for r in full])
    calibrated = all(r.answerable is not None for r in records)
    out["calibrated"] = calibrated
    if calibrated:
        pooled = full + hidden
        probs = [float(r.answerable) for r in pooled]  # type: ignore[arg-type]
        a = auroc(probs, [int(r.condition == "full") for r in pooled])
        e = ece(probs, [r.event for r in pooled])
        out["auroc"] = round(a, 4) if a is not None else None
        out["ece"] = round(e, 4) if e is not None else None
        kept = sorted(full, key=lambda r: -float(r.answerable))[: max(1, round(0.8 * n))]  # type: ignore[arg-type]
        out["recall@5_at_80_coverage"] = mean([recall_at(r, 5) for r in kept])
        out |= _result_figures(pooled)
    else:
        out |= {"auroc": None, "ece": None, "recall@5_at_80_coverage": None}
        out |= {"confidence_auroc": None, "confidence_ece": None}
    for leak in (False, True):
        part = [recall_at(r, 5) for r in full if r.leak == leak]  # every key, always
        out[f"recall@5_leak_{str(leak).lower()}"] = mean(part) if part else None
        out[f"n_leak_{str(leak).lower()}"] = len(part)
    return out


def _result_figures(records: list[Record], k: int = 8) -> dict[str, Any]:
    """AUROC and ECE of each result's `confidence` against its label (its file is a gold
    file), over the top `k` results of every question, answer present or removed."""
    probs: list[float] = []
    labels: list[int] = []
    for r in records:
        top = sorted(range(len(r.confidences)), key=lambda i: -r.confidences[i])[:k]
        probs += [r.confidences[i] for i in top]
        labels += [r.hit_labels[i] for i in top]
    a, e = auroc(probs, labels), ece(probs, labels)
    return {
        "confidence_auroc": round(a, 4) if a is not None else None,
        "confidence_ece": round(e, 4) if e is not None else None,
    }


# -- fitting ---------------------------------------------------------------------------------


# How hard a source's own history is held to the shipped calibration when it adjusts it
# (`contextd calibrate`). bench/self_calibration.py, macro AUROC / ECE on the commit sets
# from 2021 with each repository's older commits: 30 commits alone 0.694 / 0.118,
# adjusted at 10 0.715 / 0.083, at 30 0.725 / 0.085; 100 commits alone 0.715 / 0.093,
# at 10 0.727 / 0.096, at 30 0.735 / 0.099.
PRIOR_L2 = 30.0
HISTORY_L2 = 2.0  # a source's history alone, pulled toward zero (a model not shipped)


def fit(
    records: list[Record],
    model_id: str,
    origin: str,
    l2: float = 1.0,
    rerank: bool = True,
    prior: Calibration | None = None,
) -> Calibration:
    """Fit the three models: `hit` on every result's label; `relevant` on the labels of
    the questions whose answer is in the top five; `answerable` on that event.

    With `rerank`, results are ordered as search orders them: first by `hit`, to find
    the questions `relevant` is fitted on, then by `relevant` (by confidence), the order
    whose top five `answerable` speaks of. With a `prior` calibration, each model is
    pulled toward the prior's (see `Logistic.fit`) instead of toward zero.
    """
    x, y = _labelled(records)
    if not len(y) or len(set(y.tolist())) < 2:
        raise ContextdError("Too few labelled results to fit a calibration; use more queries.")
    hit = Logistic.fit(x, y, HIT_FEATURES, l2, SIGNS, prior.hit if prior else None)
    ordered = [reranked(r, hit) for r in records] if rerank else records
    x, y = _labelled([r for r in ordered if r.event])
    if len(set(y.tolist())) < 2:
        raise ContextdError(
            "No query found its answer among the top five results; a calibration needs "
            "some that did. Use more queries, or check that the gold files are indexed."
        )
    relevant = Logistic.fit(x, y, HIT_FEATURES, l2, SIGNS, prior.relevant if prior else None)
    if rerank:
        ordered = [reranked(r, relevant) for r in records]
    q = np.array([with_top_hit(hit, r) for r in ordered], dtype=float)
    events = np.array([r.event for r in ordered], dtype=float)
    if len(set(events.tolist())) < 2:
        raise ContextdError("Every query had the same outcome; a calibration needs both.")
    answerable = Logistic.fit(
        q, events, QUERY_FEATURES, l2, SIGNS, prior.answerable if prior else None
    )
    return Calibration(model_id, hit, answerable, relevant, 0.6, 0.3, origin, rerank)


def _labelled(records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
    """Every result's features and label (its file is a gold file)."""
    rows = [(f, y) for r in records for f, y in zip(r.hit_features, r.hit_labels, strict=True)]
    x = np.array([f for f, _ in rows], dtype=float).reshape(len(rows), len(HIT_FEATURES))
    return x, np.array([y for _, y in rows], dtype=float)


def reranked(r: Record, model: Logistic) -> Record:
    """The record with its files ordered as this model orders its results."""
    if not r.hit_features or not r.hit_paths:
        return r
    logits = model.logit(np.array(r.hit_features))
    files = list(dict.fromkeys(r.hit_paths[i] for i in np.argsort(-logits, kind="stable")))
    files += [f for f in r.files if f not in files]
    return replace(r, files=files[:RANKED])


def with_top_hit(hit: Logistic, r: Record) -> list[float]:
    """The record's query features, with `top_hit` from this hit model."""
    f = list(r.query_features)
    if r.hit_features:
        f[0] = logit(float(hit.predict(np.array(r.hit_features)).max()))
    return f


def rescore(records: list[Record], cal: Calibration) -> list[Record]:
    """The records as this calibration would have ranked and scored them."""
    out = []
    for r in records:
        if cal.rerank:
            r = reranked(r, cal.relevant)
        f = np.array(with_top_hit(cal.hit, r))[None, :]
        p = float(cal.answerable.predict(f)[0]) if r.hit_features else 0.0
        c = cal.confidence(p, np.array(r.hit_features)).tolist() if r.hit_features else []
        out.append(replace(r, answerable=p, confidences=c))
    return out


def save_records(records: list[Record], path: Path) -> None:
    path.write_text("".join(json.dumps(r.__dict__) + "\n" for r in records))


def read_records(path: Path) -> list[Record]:
    return [Record(**json.loads(line)) for line in path.read_text().splitlines() if line]
