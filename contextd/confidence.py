"""Calibrated confidence: how likely a result is relevant, and the index holds the answer.

Three small logistic models, fitted by `bench/fit_calibration.py` (or `contextd
calibrate` for one source) and shipped as JSON beside the package:

- `hit`: P(this result is relevant) from the result's own evidence alone: its cosine,
  BM25, where it ranks on each side, how much of the query (weighted by rarity) it
  contains. Its best feeds `answerable`.
- `answerable`: P(the top `ANSWER_K` results hold the answer) from the shape of the whole
  answer: the best result's `hit`, how far the best stands out from the rest, whether
  the dense and lexical rankings agree, and how much of the query occurs in the index.
- `relevant`: P(this result is relevant | the top results hold the answer), from the
  same evidence, fitted on the questions whose answer was there. It orders the results
  (the learned fusion), so they come in the order of their confidence.

A result's `confidence` is `answerable` x `relevant`: a result can only be the answer if
the answer is there, so no result is ever surer than the answer as a whole, and a
question the index most likely cannot answer lowers every result with it. (The `hit`
model alone, blind to the rest of the answer, put its best result above `answerable`
for 17-60% of the development questions, held out.)

A calibration belongs to one embedding model: its cosines mean nothing for another. A
search with a model that has no calibration says `calibrated: false` and gives no
numbers, never borrowed ones.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

ANSWER_K = 5  # `answerable` speaks of the top five results
log = logging.getLogger(__name__)

# Which way each feature may push (+1: more of it, more likely); 0 is free.
SIGNS = {
    "dense": 1, "dense_gap": -1, "lexical": 1, "bm25": 1, "score_gap": -1, "rank": -1,
    "file_rank": -1, "coverage": 1, "name_match": 1, "both": 1, "secondary": -1,
    "top_hit": 1, "top_dense": 1, "dense_margin": 1, "dense_peak": 1, "top_bm25": 1,
    "score_margin": 1, "agreement": 1, "top_agree": 1, "presence": 1, "top_coverage": 1,
    "top_primary": 1, "primary_gap": -1, "orphan_test": -1, "name_presence": 1,
    "top_name": 1, "identifier_defined": 1, "top_secondary": -1,
}  # fmt: skip

HIT_FEATURES = (
    "dense",  # cosine of query and chunk
    "dense_gap",  # best cosine among the results minus this one's
    "lexical",  # BM25 relative to the query's best lexical match (0..1)
    "bm25",  # log(1 + BM25)
    "score_gap",  # best fused score minus this one's
    "rank",  # log(1 + position among the results)
    "file_rank",  # log(1 + position of its file among the files)
    "coverage",  # share of the query's weight (IDF) found in the chunk, its path or symbol
    "name_match",  # share of the query's weight found in its path or symbol
    "both",  # found by both the dense and the lexical side
    "secondary",  # a test or changelog, when the query does not ask for those
)
# No "is documentation" feature: the labelled queries are code changes whose answers are
# code by construction, so the model would learn that docs are never relevant and bury
# the answer to every documentation question. A doc is judged on its evidence like code.
QUERY_FEATURES = (
    "top_hit",  # logit of the best result's `hit` probability
    "top_dense",  # best cosine
    "dense_margin",  # best file's cosine minus the second file's
    "dense_peak",  # best cosine minus the mean of the top ten
    "top_bm25",  # log(1 + best BM25)
    "score_margin",  # best fused score minus the fifth
    "agreement",  # share of the top five files both rankings (dense, lexical) agree on
    "top_agree",  # the dense and the lexical rankings have the same best file
    "presence",  # share of the query's weight that occurs anywhere in the index
    "top_coverage",  # share of the query's weight found in the top five results
    "n_terms",  # log(1 + number of query terms)
    "top_primary",  # the best result is code or a doc (not a test or changelog)
    "primary_gap",  # best fused score minus the best code or doc result's
    "orphan_test",  # a top result tests a module the index does not have
    "name_presence",  # share of the query's weight found in some path or symbol name
    "top_name",  # the most of the query's weight one top result has in its path or symbol
    "has_identifier",  # the query names code (`super_len`, `Session.send`, `parseURL`)
    "identifier_defined",  # share of those names that some path or symbol in the index has
    "top_secondary",  # share of the top five results that are tests or changelogs
)
VERDICTS = ("found", "uncertain", "not_found")


def _slug(model_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id.split("/")[-1])


@dataclass(frozen=True)
class Logistic:
    """Logistic regression on standardised features, small enough to read."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    # Inputs are clipped to the range seen in fitting (1st-99th percentile): a tiny
    # index gives gaps and ranks no training answer had, and a linear model must not
    # extrapolate its way to nonsense there.
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    def logit(self, rows: np.ndarray) -> np.ndarray:
        if self.low is not None and self.high is not None:
            rows = np.clip(rows, self.low, self.high)
        return ((rows - self.mean) / self.scale) @ self.weights + self.bias

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(rows), -30, 30)))

    @classmethod
    def fit(
        cls,
        rows: np.ndarray,
        labels: np.ndarray,
        features: tuple[str, ...],
        l2: float = 1.0,
        signs: dict[str, int] | None = None,
        prior: Logistic | None = None,
    ) -> Logistic:
        """Newton's method on the L2-penalised log-likelihood (the bias is not penalised).

        `signs` says which way a feature may push (+1: more is more likely relevant).
        Correlated features can take opposite signs that cancel on the data seen and
        mislead elsewhere; a feature whose weight comes out the wrong way is dropped
        (weight 0) and the rest refitted.

        With a `prior` (a model of the same features), the penalty pulls the weights
        toward the prior's instead of toward zero, on the prior's scale: a few hundred
        rows then adjust a model fitted on many more, rather than replace it.
        """
        if prior is not None and prior.features != features:
            raise ValueError("the prior is a model of other features")
        if prior is None:
            mean = rows.mean(axis=0)
            scale = rows.std(axis=0)
            scale[scale < 1e-9] = 1.0
            center = np.zeros(len(features) + 1)
        else:
            mean, scale = prior.mean, prior.scale
            center = np.append(prior.weights, prior.bias)
        x = np.hstack([(rows - mean) / scale, np.ones((len(rows), 1))])
        active = np.ones(x.shape[1], dtype=bool)
        want = np.array([(signs or {}).get(f, 0) for f in features] + [0])
        while True:
            w = np.zeros(x.shape[1])
            w[active] = _newton(x[:, active], labels, l2, center[active])
            wrong = np.where(active & (want != 0) & (np.sign(w) == -want), np.abs(w), 0.0)
            if not wrong.any():
                break
            active[int(np.where(wrong > 0, wrong, np.inf).argmin())] = False
        low, high = np.percentile(rows, [1, 99], axis=0)
        if prior is not None and prior.low is not None and prior.high is not None:
            # A few hundred rows span less than the prior's data did: keep its range.
            low, high = np.minimum(low, prior.low), np.maximum(high, prior.high)
        return cls(features, mean, scale, w[:-1], float(w[-1]), low, high)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(self.bias, 6),
        }
        if self.low is not None and self.high is not None:
            out["low"] = [round(float(v), 6) for v in self.low]
            out["high"] = [round(float(v), 6) for v in self.high]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Logistic:
        return cls(
            tuple(d["features"]),
            np.array(d["mean"], dtype=float),
            np.array(d["scale"], dtype=float),
            np.array(d["weights"], dtype=float),
            float(d["bias"]),
            np.array(d["low"], dtype=float) if "low" in d else None,
            np.array(d["high"], dtype=float) if "high" in d else None,
        )


def _newton(x: np.ndarray, labels: np.ndarray, l2: float, center: np.ndarray) -> np.ndarray:
    """Weights of a logistic regression penalised toward `center`; the last column is the
    unpenalised bias."""
    w = center.astype(float)
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - labels) + penalty * (w - center)
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


@dataclass(frozen=True)
class Calibration:
    model_id: str
    hit: Logistic
    answerable: Logistic
    relevant: Logistic  # P(relevant | the top ANSWER_K results hold the answer)
    found: float  # answerable at or above this: "found"
    not_found: float  # below this: "not_found"; between: "uncertain"
    origin: str  # what it was fitted on
    rerank: bool = False  # order results by confidence (the relevant model is the fusion)

    def verdict(self, answerable: float) -> str:
        if answerable >= self.found:
            return "found"
        return "not_found" if answerable < self.not_found else "uncertain"

    def confidence(self, answerable: float, hit_features: np.ndarray) -> np.ndarray:
        """P(relevant) of each result: the answer is there, and this result is it."""
        return answerable * self.relevant.predict(hit_features)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "answer_k": ANSWER_K,
            "found": self.found,
            "not_found": self.not_found,
            "origin": self.origin,
            "rerank": self.rerank,
            "hit": self.hit.as_dict(),
            "answerable": self.answerable.as_dict(),
            "relevant": self.relevant.as_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        if "relevant" not in d:
            raise ValueError("it was fitted by an earlier contextd (no `relevant` model)")
        hit, answerable, relevant = (
            Logistic.from_dict(d[k]) for k in ("hit", "answerable", "relevant")
        )
        expected = (HIT_FEATURES, QUERY_FEATURES, HIT_FEATURES)
        if (hit.features, answerable.features, relevant.features) != expected:
            raise ValueError("its features are not the ones this version computes")
        return cls(
            str(d["model_id"]),
            hit,
            answerable,
            relevant,
            float(d["found"]),
            float(d["not_found"]),
            str(d.get("origin", "")),
            bool(d.get("rerank", False)),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=1) + "\n")
        tmp.replace(path)


def shipped(model_id: str) -> Calibration | None:
    """The calibration that comes with the package for this model, if there is one."""
    name = f"{_slug(model_id)}.json"
    ref = resources.files("contextd.resources").joinpath("calibration", name)
    if not ref.is_file():
        return None
    cal = Calibration.from_dict(json.loads(ref.read_text()))
    return cal if cal.model_id == model_id else None


def source_path(home: Path, source: str) -> Path:
    return home / "calibration" / f"{source}.json"


class Calibrations:
    """Finds the calibration for a search: the source's own, else the shipped one.

    Files are re-read when they change, so `contextd calibrate` takes effect in a
    running daemon without a restart.
    """

    def __init__(self, home: Path, model_id: str):
        self.home = home
        self.model_id = model_id
        self._shipped = shipped(model_id)
        self._sources: dict[str, tuple[int, Calibration | None]] = {}
        self._problems: dict[str, str] = {}  # why a source's own calibration is passed over

    def for_sources(self, sources: list[str]) -> Calibration | None:
        """One source with its own calibration uses it; otherwise the shipped one."""
        if len(sources) == 1:
            own = self._source(sources[0])
            if own is not None:
                return own
        return self._shipped

    def problem(self, source: str) -> str | None:
        """Why a source's own calibration, fitted by `contextd calibrate`, is not used."""
        if self._source(source) is not None or not source_path(self.home, source).exists():
            return None
        return self._problems.get(source)

    def _source(self, source: str) -> Calibration | None:
        path = source_path(self.home, source)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            self._sources.pop(source, None)
            return None
        cached = self._sources.get(source)
        if cached and cached[0] == mtime:
            return cached[1]
        self._problems.pop(source, None)  # read anew: said again below if it still applies
        try:
            cal: Calibration | None = Calibration.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            cal = None  # a broken or outdated file is passed over, and said so once
            log.warning(
                "Calibration %s is unusable (%s); using the shipped one. "
                "Run `contextd calibrate %s` to fit it again.",
                path,
                e,
                source,
            )
            self._problems[source] = (
                f"its own calibration is unusable (fitted by an earlier contextd, or "
                f"damaged): the shipped one is used. Run `contextd calibrate {source}`."
            )
        if cal is not None and cal.model_id != self.model_id:
            self._problems[source] = (
                f"its own calibration was fitted for model {cal.model_id}: the shipped one "
                f"is used. Run `contextd calibrate {source}`."
            )
            cal = None
        self._sources[source] = (mtime, cal)
        return cal


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
