"""How many of the true nearest chunks the vector store's HNSW search returns, per ef_search.

    python bench/hnsw_recall.py --home DIR [--source bench] [-k 50] [--ef 100,400,800]
        [--queries 300]

DIR is a data dir already indexed, with one source (e.g. `bench/index_cold.py --keep
DIR`). The truth is exact cosine over every embedded chunk's vector, read from the
catalog's embedding cache. Two kinds of queries: those of bench/query_latency.py (2-5
words), and the subjects of the commits in shared/eval/commits (questions as developers
write them). Chroma reads ef_search when it loads a collection, so each value is set in
one child process and measured in the next, both with Chroma alone (opening contextd
would raise a low value); the store's own value is put back at the end. A chunk counts
as found when its cosine is at least the k-th best (identical chunks tie; that is not a
miss). One line per value, then a summary line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from query_latency import queries  # noqa: E402

from contextd.settings import Settings  # noqa: E402
from contextd.store import collection_name, open_client  # noqa: E402

COMMITS = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "commits"


def collection(home: Path, model_id: str):  # type: ignore[no-untyped-def]
    return open_client(Settings(home=home)).get_collection(collection_name(model_id))


def truth(home: Path, source: str, k: int, n: int, out: Path) -> tuple[str, int]:
    """Query vectors and each one's k-th best cosine, saved to `out`: (model, chunks)."""
    import numpy as np

    from contextd.app import App

    app = App(Settings(home=home))
    stored = app.catalog.chunks(sorted(app.catalog.embedded_ids(source)))
    if not stored:
        sys.exit(f"source '{source}' has no embedded chunks in {home}")
    vectors = app.catalog.cached_vectors(app.embedder.model_id, (s.chunk.hash for s in stored))
    matrix = np.stack([vectors[s.chunk.hash] for s in stored])
    subjects = [
        json.loads(line)["query"]
        for path in sorted(COMMITS.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    kinds = {"words": queries(n), "commit subjects": subjects}
    saved = {}
    for kind, texts in kinds.items():
        q = app.embedder.embed(texts)
        kth = np.array([np.partition(matrix @ v, -k)[-k] for v in q])
        saved[kind] = (q, kth)
    np.save(out, {kind: [q, kth] for kind, (q, kth) in saved.items()}, allow_pickle=True)
    model = app.embedder.model_id
    app.close()
    return model, len(stored)


def measure(home: Path, model: str, k: int, data: Path) -> dict[str, object]:
    import numpy as np

    col = collection(home, model)
    found: dict[str, float] = {}
    times = []
    for kind, (q, kth) in np.load(data, allow_pickle=True).item().items():
        hits = []
        for v, best in zip(q, kth, strict=True):
            t0 = time.perf_counter()
            got = col.query(query_embeddings=v.reshape(1, -1), n_results=k, include=["distances"])
            times.append(time.perf_counter() - t0)
            hits.append(sum(1.0 - d >= best - 1e-4 for d in got["distances"][0]) / k)
        found[kind] = statistics.mean(hits)
    return {"recall": found, "p50_ms": statistics.median(times) * 1000}


def child(*args: str) -> str:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr.strip()[-2000:])
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--source", default="bench")
    p.add_argument("-k", type=int, default=50, help="as many as search draws (its pool)")
    p.add_argument("--ef", default="100,400,800")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--set", type=int, help=argparse.SUPPRESS)
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.set is not None:  # a child: set ef_search (0: only read it)
        col = collection(a.home, a.model)
        before = int(col.configuration["hnsw"]["ef_search"])
        if a.set and a.set != before:
            col.modify(configuration={"hnsw": {"ef_search": a.set}})
        print(before)
        return 0
    if a.measure is not None:  # a child: measure with what the store has now
        print(json.dumps(measure(a.home, a.model, a.k, a.measure)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "truth.npy"
        model, chunks = truth(a.home, a.source, a.k, a.queries, data)
        common = ["--home", str(a.home), "--model", model]
        original = int(child(*common, "--set", "0"))
        rows = []
        try:
            for ef in [int(x) for x in a.ef.split(",")]:
                child(*common, "--set", str(ef))
                row = json.loads(child(*common, "-k", str(a.k), "--measure", str(data)))
                rows.append((ef, row))
                recall = ", ".join(f"{kind} {r:.4f}" for kind, r in row["recall"].items())
                print(f"ef_search {ef}: recall@{a.k} {recall}; p50 {row['p50_ms']:.2f} ms")
        finally:
            child(*common, "--set", str(original))
    parts = "; ".join(
        f"ef {ef}: "
        + ", ".join(f"{r:.3f}" for r in row["recall"].values())
        + f" ({row['p50_ms']:.1f} ms)"
        for ef, row in rows
    )
    print(
        f"summary: HNSW recall@{a.k} over {chunks} chunks, {a.queries} word queries and "
        f"the commit subjects (in that order): {parts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
