"""Cold index of a large real tree: when it is searchable, how fast it embeds, what it costs.

    python bench/index_cold.py [PATH ...] [--git GIT_DIR ...] [--sample 1500]

Without arguments the tree is the standard library of the Python running this script
(`sysconfig.get_paths()["stdlib"]`). --git clones a repository (bare is fine) into a
temp dir first. Each tree is indexed by `contextd index` in a fresh data dir, in its own
process (so its peak RSS is its own), while this script watches the catalog:

- lexically searchable: every file the run ends with has its catalog row (FTS5 is
  written in the same transaction);
- fully embedded: every chunk has its vector in the store (the run's end);
- chunks/s: chunks embedded per second of the run's embedding, and of the whole run;
- raw model chunks/s: the same model on a sample of the same chunks, in this process,
  right after the run, in the dtype the pipeline chose and in float32;
- peak RSS of the indexing process, and the data dir's size on disk.

One summary line per tree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CONTEXTD, cli, env_for  # noqa: E402

from contextd.settings import Settings  # noqa: E402


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def catalog_rows(db: Path) -> int:
    """Files with a catalog row (indexed or skipped); 0 while the catalog is not there."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("SELECT count(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


def run_index(env: dict[str, str], db: Path) -> tuple[dict, list[tuple[float, int]], int, float]:
    """`contextd index --json` in a child; (summary, [(t, catalog rows)], peak RSS, seconds)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [*CONTEXTD, "index", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    seen: list[tuple[float, int]] = []
    rusage = None
    while rusage is None:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            rusage = usage
            break
        seen.append((time.perf_counter() - started, catalog_rows(db)))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    out = child.stdout.read().decode() if child.stdout else ""
    err = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"contextd index failed: {err.strip()[-2000:]}")
    seen.append((seconds, catalog_rows(db)))
    return json.loads(out), seen, rusage.ru_maxrss * 1024, seconds


def raw_rates(home: Path, sample: int) -> tuple[int, dict[str, float]]:
    """The model alone on a sample of the index's own chunk texts: chunks/s per dtype."""
    import numpy as np
    import torch

    from contextd.app import App
    from contextd.embedder import cpu_has_fast_bf16

    app = App(Settings(home=home))
    ids = sorted(app.catalog.chunk_ids("bench"))
    random.Random(0).shuffle(ids)
    texts = [s.chunk.embed_text for s in app.catalog.chunks(ids[:sample])]
    model = app.embedder
    model.load()
    st = model._load()  # the SentenceTransformer itself, in the dtype the pipeline chose
    rates = {}
    dtypes = ["bfloat16", "float32"] if cpu_has_fast_bf16() else ["float32"]
    for dtype in dtypes:
        st.to(getattr(torch, dtype))
        with torch.inference_mode():
            batch = app.settings.batch_size
            st.encode(texts[:batch], batch_size=batch)  # warm up
            t0 = time.perf_counter()
            v = st.encode(texts, batch_size=batch, normalize_embeddings=True)
            rates[dtype] = len(texts) / (time.perf_counter() - t0)
        assert np.isfinite(v).all()
    app.close()
    return len(texts), rates


def bench(root: Path, label: str, sample: int, keep: Path | None = None) -> str:
    with tempfile.TemporaryDirectory(prefix="contextd-cold-") as tmp:
        home = keep.resolve() if keep else Path(tmp) / "home"
        if keep and keep.exists():
            sys.exit(f"{keep} exists; --keep wants a new directory")
        env = env_for(home)
        cli(env, "add", str(root), "--name", "bench", "--no-hooks")
        summary, seen, rss, seconds = run_index(env, Settings(home=home).catalog_path)
        row = summary["sources"][0]
        final = row["files"] + row["skipped"]
        searchable = next(t for t, n in seen if n >= final)
        size = du(home)
        n, rates = raw_rates(home, sample)
    pipeline = row["embed_rate"]
    overall = row["embedded"] / seconds if seconds else 0.0
    raw = " ".join(f"{k} {v:.1f}" for k, v in rates.items())
    best = max(rates.values())
    return (
        f"summary: {label}: {row['files']} files ({row['skipped']} skipped), "
        f"{row['chunks']} chunks; lexically searchable {searchable:.1f}s, fully embedded "
        f"{seconds:.1f}s; pipeline {pipeline:.1f} chunks/s while embedding, {overall:.1f} "
        f"over the run; raw model on {n} of its chunks: {raw} chunks/s "
        f"(pipeline/raw {pipeline / best:.2f}); peak RSS {rss / 2**20:.0f} MiB; "
        f"store {size / 2**20:.0f} MiB"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", type=Path, nargs="*")
    p.add_argument("--git", type=Path, nargs="*", default=[], help="repositories to clone")
    p.add_argument("--sample", type=int, default=1500, help="chunks for the raw model rate")
    p.add_argument("--keep", type=Path, help="keep the (first) tree's data dir here")
    a = p.parse_args()
    paths = list(a.paths)
    if not paths and not a.git:
        paths = [Path(sysconfig.get_paths()["stdlib"])]
    for path in paths:
        print(bench(path, str(path), a.sample, a.keep), flush=True)
        a.keep = None
    for git_dir in a.git:
        with tempfile.TemporaryDirectory(prefix="contextd-clone-") as tmp:
            clone = Path(tmp) / git_dir.name.removesuffix(".git")
            subprocess.run(["git", "clone", "-q", str(git_dir), str(clone)], check=True)
            print(bench(clone, f"clone of {git_dir}", a.sample), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
