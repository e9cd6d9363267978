"""`contextd eval --plot`: a reliability diagram and a risk-coverage curve, as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contextd.errors import ContextdError
from contextd.evaluation import Record, recall_at


def write(records: list[Record], folder: Path, title: str) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ContextdError(
            "--plot needs matplotlib: pip install 'contextd[plot]' (or pip install matplotlib)."
        ) from None
    if any(r.answerable is None for r in records):
        raise ContextdError(
            "No calibration for this embedding model, so there is nothing to plot: run "
            "without --plot, or with the default model."
        )
    folder.mkdir(parents=True, exist_ok=True)
    records = [r for r in records if r.condition in ("full", "hidden")]  # as ECE counts them
    probs = np.array([float(r.answerable) for r in records])  # type: ignore[arg-type]
    events = np.array([r.event for r in records], dtype=float)
    order = np.argsort(probs, kind="stable")
    bins = [b for b in np.array_split(order, 10) if len(b)]
    stated = [probs[b].mean() for b in bins]
    seen = [events[b].mean() for b in bins]

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
    ax.plot(stated, seen, "o-", c="tab:blue", label="contextd (10 equal-mass bins)")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="stated probability (answerable)",
        ylabel="observed: a gold file in the top 5",
        title=f"Reliability — {title}",
    )
    ax.legend(loc="upper left")
    reliability = folder / "reliability.png"
    fig.tight_layout()
    fig.savefig(reliability, dpi=120)
    plt.close(fig)

    full = sorted(
        (r for r in records if r.condition == "full"), key=lambda r: -float(r.answerable or 0)
    )
    recall = np.array([recall_at(r, 5) for r in full])
    n = np.arange(1, len(full) + 1)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(n / len(full), np.cumsum(recall) / n, c="tab:green", label="answer the most confident")
    ax.axhline(recall.mean(), ls="--", c="grey", lw=1, label="answer everything")
    ax.axvline(0.8, ls=":", c="grey", lw=1)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="coverage (share of queries answered)",
        ylabel="Recall@5 on the answered queries",
        title=f"Risk–coverage — {title}",
    )
    ax.legend(loc="lower left")
    coverage = folder / "risk-coverage.png"
    fig.tight_layout()
    fig.savefig(coverage, dpi=120)
    plt.close(fig)
    return [reliability, coverage]
